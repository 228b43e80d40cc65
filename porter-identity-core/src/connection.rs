//! `Connection`: one entry of a porter.yaml service's `connections`.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde_json::Value;

use crate::aws_role_options::{session_policy_text, target_not_arn};
use crate::{
    AwsRoleMode, AwsRoleOptions, AzureIdentityName, AzureResourceGroup, Cloud,
    GcpServiceAccountEmail, Result, RoleRef,
};

/// One entry of `services[].connections[]` in porter.yaml, tagged by its `type`.
///
/// The three identity types are validated when read; any other type (`cloudSql`, `disk`, …)
/// is kept as [`Connection::Other`] with its raw fields, and ignored by the providers.
///
/// ```
/// use porter_identity_core::{Cloud, Connection};
///
/// let c: Connection = serde_json::from_str(r#"{"type":"awsRole","role":"my-role"}"#)?;
/// assert_eq!(c.cloud(), Some(Cloud::Aws));
/// let other: Connection = serde_json::from_str(r#"{"type":"cloudSql","instance":"db"}"#)?;
/// assert_eq!(other.type_name(), "cloudSql");
/// assert_eq!(other.cloud(), None);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// The enum and its variants are `#[non_exhaustive]`: a cloud, or a field of a connection
/// (an AWS target role), can be added in a minor release. Make one with its constructor
/// ([`aws_role`](Self::aws_role), [`azure_managed_identity`](Self::azure_managed_identity),
/// [`gcp_service_account`](Self::gcp_service_account)) and match it with `..`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Connection {
    /// `type: awsRole`: an IAM role for EKS Pod Identity (or IRSA).
    #[non_exhaustive]
    AwsRole {
        /// `role`: the role's name or ARN.
        role: RoleRef,
        /// porter-identity's own keys: `targetRole`, `disableSessionTags`, `sessionPolicy`,
        /// `mode`.
        options: AwsRoleOptions,
    },
    /// `type: azureManagedIdentity`: a user-assigned managed identity.
    #[non_exhaustive]
    AzureManagedIdentity {
        /// `identityName`.
        identity_name: AzureIdentityName,
        /// `resourceGroup`.
        resource_group: AzureResourceGroup,
    },
    /// `type: gcpServiceAccount`: a GCP service account for GKE Workload Identity.
    #[non_exhaustive]
    GcpServiceAccount {
        /// `serviceAccountEmail`.
        service_account_email: GcpServiceAccountEmail,
    },
    /// Any other connection type, kept as written and ignored by porter-identity.
    #[non_exhaustive]
    Other {
        /// The `type` as written.
        kind: String,
        /// The other fields as written.
        raw: BTreeMap<String, Value>,
    },
}

/// A problem with one field of a connection, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldProblem {
    pub(crate) field: String,
    pub(crate) problem: String,
    pub(crate) fix: String,
}

impl Connection {
    /// `type: awsRole`: the IAM role `role`.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Connection, RoleRef};
    /// let c = Connection::aws_role(RoleRef::parse("shop-api")?);
    /// assert_eq!(c.cloud(), Some(Cloud::Aws));
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    pub fn aws_role(role: RoleRef) -> Self {
        Connection::AwsRole {
            role,
            options: AwsRoleOptions::default(),
        }
    }

    /// `type: awsRole` with porter-identity's own keys (a target role, session tags, a
    /// session policy, the mode), checked together.
    ///
    /// ```
    /// use porter_identity_core::{AwsRoleMode, AwsRoleOptions, Connection, RoleRef};
    /// let c = Connection::aws_role_with(
    ///     RoleRef::parse("shop-api")?,
    ///     AwsRoleOptions::default().mode(AwsRoleMode::Irsa),
    /// )?;
    /// assert_eq!(c.describe(), "awsRole shop-api (IRSA)");
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    pub fn aws_role_with(role: RoleRef, options: AwsRoleOptions) -> Result<Self> {
        if let Some(target) = &options.target_role
            && !target.is_arn()
        {
            return Err(target_not_arn(target.as_str()));
        }
        options.validate()?;
        Ok(Connection::AwsRole { role, options })
    }

    /// `type: azureManagedIdentity`: the user-assigned managed identity `identity_name` in
    /// `resource_group`.
    pub fn azure_managed_identity(
        identity_name: AzureIdentityName,
        resource_group: AzureResourceGroup,
    ) -> Self {
        Connection::AzureManagedIdentity {
            identity_name,
            resource_group,
        }
    }

    /// `type: gcpServiceAccount`: the GCP service account `service_account_email`.
    pub fn gcp_service_account(service_account_email: GcpServiceAccountEmail) -> Self {
        Connection::GcpServiceAccount {
            service_account_email,
        }
    }

    /// The cloud this connection binds to, or `None` for other connection types.
    pub fn cloud(&self) -> Option<Cloud> {
        match self {
            Connection::AwsRole { .. } => Some(Cloud::Aws),
            Connection::AzureManagedIdentity { .. } => Some(Cloud::Azure),
            Connection::GcpServiceAccount { .. } => Some(Cloud::Gcp),
            Connection::Other { .. } => None,
        }
    }

    /// The `type` as porter.yaml writes it.
    pub fn type_name(&self) -> &str {
        match self {
            Connection::Other { kind, .. } => kind,
            other => other.cloud().map_or("", Cloud::connection_type),
        }
    }

    /// Whether porter-identity acts on this connection.
    pub fn is_identity(&self) -> bool {
        self.cloud().is_some()
    }

    /// A one-line description, e.g. `awsRole my-role`.
    pub fn describe(&self) -> String {
        match self {
            Connection::AwsRole { role, options } => {
                let mut s = format!("awsRole {role}");
                if let Some(target) = &options.target_role {
                    s.push_str(&format!(" -> {target}"));
                }
                if options.mode == Some(AwsRoleMode::Irsa) {
                    s.push_str(" (IRSA)");
                }
                s
            }
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
            } => format!("azureManagedIdentity {resource_group}/{identity_name}"),
            Connection::GcpServiceAccount {
                service_account_email,
            } => format!("gcpServiceAccount {service_account_email}"),
            Connection::Other { kind, .. } => format!("{kind} (not an identity connection)"),
        }
    }

    /// Builds a connection from its fields (as read from YAML or JSON), checking each.
    pub(crate) fn from_fields(
        fields: &serde_json::Map<String, Value>,
    ) -> std::result::Result<Self, FieldProblem> {
        let type_fix = "add `type:` (awsRole, azureManagedIdentity, gcpServiceAccount, or another connection type)";
        let kind = match fields.get("type") {
            None => {
                return Err(FieldProblem {
                    field: "type".into(),
                    problem: "is missing".into(),
                    fix: type_fix.into(),
                });
            }
            Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
            Some(Value::String(_) | Value::Null) => {
                return Err(FieldProblem {
                    field: "type".into(),
                    problem: "is empty".into(),
                    fix: type_fix.into(),
                });
            }
            Some(other) => {
                return Err(FieldProblem {
                    field: "type".into(),
                    problem: format!("must be a string, found {}", value_kind(other)),
                    fix: "write the connection type as a string, e.g. `type: awsRole`".into(),
                });
            }
        };
        let text = |name: &str, example: &str| -> std::result::Result<&str, FieldProblem> {
            match fields.get(name) {
                Some(Value::String(s)) => Ok(s.as_str()),
                None => Err(FieldProblem {
                    field: name.into(),
                    problem: format!("is missing; `{kind}` needs it"),
                    fix: format!("add `{name}: {example}`"),
                }),
                Some(Value::Null) => Err(FieldProblem {
                    field: name.into(),
                    problem: format!("is empty; `{kind}` needs it"),
                    fix: format!("write it as `{name}: {example}`"),
                }),
                Some(other) => Err(FieldProblem {
                    field: name.into(),
                    problem: format!("must be a string, found {}", value_kind(other)),
                    fix: format!("write it as a string, e.g. `{name}: {example}`"),
                }),
            }
        };
        Ok(match kind {
            "awsRole" => Connection::AwsRole {
                role: checked("role", RoleRef::parse(text("role", "my-app-role")?))?,
                options: aws_role_options(fields)?,
            },
            "azureManagedIdentity" => {
                let name = text("identityName", "my-app-identity")?;
                let group = text("resourceGroup", "my-resource-group")?;
                Connection::AzureManagedIdentity {
                    identity_name: checked("identityName", AzureIdentityName::parse(name))?,
                    resource_group: checked("resourceGroup", AzureResourceGroup::parse(group))?,
                }
            }
            "gcpServiceAccount" => {
                let v = text(
                    "serviceAccountEmail",
                    "my-app@my-project.iam.gserviceaccount.com",
                )?;
                Connection::GcpServiceAccount {
                    service_account_email: checked(
                        "serviceAccountEmail",
                        GcpServiceAccountEmail::parse(v),
                    )?,
                }
            }
            other => Connection::Other {
                kind: other.to_owned(),
                raw: fields
                    .iter()
                    .filter(|(k, _)| *k != "type")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        })
    }
}

/// porter-identity's own keys of an `awsRole` connection, each checked, then checked together.
fn aws_role_options(
    fields: &serde_json::Map<String, Value>,
) -> std::result::Result<AwsRoleOptions, FieldProblem> {
    let mut options = AwsRoleOptions::default();
    let wrong_type = |name: &str, want: &str, example: &str, v: &Value| FieldProblem {
        field: name.into(),
        problem: format!("must be {want}, found {}", value_kind(v)),
        fix: format!("write it as `{name}: {example}`"),
    };
    match fields.get("targetRole") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let role = checked("targetRole", RoleRef::parse(s))?;
            options = checked("targetRole", options.target_role(role))?;
        }
        Some(v) => {
            return Err(wrong_type(
                "targetRole",
                "a string",
                "arn:aws:iam::444455556666:role/my-data-role",
                v,
            ));
        }
    }
    match fields.get("disableSessionTags") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => options.disable_session_tags = Some(*b),
        Some(v) => return Err(wrong_type("disableSessionTags", "true or false", "true", v)),
    }
    match fields.get("sessionPolicy") {
        None | Some(Value::Null) => {}
        Some(v) => options.session_policy = Some(checked("sessionPolicy", session_policy_text(v))?),
    }
    match fields.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => options.mode = Some(checked("mode", AwsRoleMode::parse(s))?),
        Some(v) => return Err(wrong_type("mode", "a string", "irsa", v)),
    }
    checked_options(options.validate().map(|()| options))
}

/// Places an error of the options taken together on the field it names (`awsRole.<key>`).
fn checked_options(r: Result<AwsRoleOptions>) -> std::result::Result<AwsRoleOptions, FieldProblem> {
    r.map_err(|e| {
        let field = match &e {
            crate::Error::InvalidInput { field, .. } => {
                field.strip_prefix("awsRole.").unwrap_or(field).to_owned()
            }
            _ => "type".to_owned(),
        };
        let (problem, fix) = e.into_problem_and_fix();
        FieldProblem {
            field,
            problem,
            fix,
        }
    })
}

/// Places a validator's error on `field`.
fn checked<T>(field: &str, r: Result<T>) -> std::result::Result<T, FieldProblem> {
    r.map_err(|e| {
        let (problem, fix) = e.into_problem_and_fix();
        FieldProblem {
            field: field.into(),
            problem,
            fix,
        }
    })
}

/// Names a JSON value's type for an error message.
pub(crate) fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl serde::Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            Connection::AwsRole { role, options } => {
                map.serialize_entry("role", role)?;
                if let Some(target) = &options.target_role {
                    map.serialize_entry("targetRole", target)?;
                }
                if let Some(disable) = options.disable_session_tags {
                    map.serialize_entry("disableSessionTags", &disable)?;
                }
                if let Some(policy) = options.session_policy_value() {
                    map.serialize_entry("sessionPolicy", &policy)?;
                }
                if let Some(mode) = options.mode {
                    map.serialize_entry("mode", mode.as_str())?;
                }
            }
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
            } => {
                map.serialize_entry("identityName", identity_name)?;
                map.serialize_entry("resourceGroup", resource_group)?;
            }
            Connection::GcpServiceAccount {
                service_account_email,
            } => map.serialize_entry("serviceAccountEmail", service_account_email)?,
            Connection::Other { raw, .. } => {
                for (k, v) in raw {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let fields = serde_json::Map::<String, Value>::deserialize(d)?;
        Connection::from_fields(&fields).map_err(|p| {
            serde::de::Error::custom(format!("field `{}` {}. Fix: {}", p.field, p.problem, p.fix))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<Connection, FieldProblem> {
        let v: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        Connection::from_fields(&v)
    }

    #[test]
    fn identity_types() {
        let c =
            parse(r#"{"type":"azureManagedIdentity","identityName":"idn","resourceGroup":"rg"}"#)
                .unwrap();
        assert_eq!(c.cloud(), Some(Cloud::Azure));
        assert_eq!(c.describe(), "azureManagedIdentity rg/idn");
        let c = parse(r#"{"type":"gcpServiceAccount","serviceAccountEmail":"my-app@my-project.iam.gserviceaccount.com"}"#).unwrap();
        assert_eq!(c.type_name(), "gcpServiceAccount");
    }

    #[test]
    fn other_keeps_raw_fields() {
        let c = parse(r#"{"type":"cloudSql","config":{"instance":"db","port":5432}}"#).unwrap();
        let Connection::Other { kind, raw } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(kind, "cloudSql");
        assert_eq!(raw["config"]["port"], 5432);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["type"], "cloudSql");
        assert_eq!(back["config"]["instance"], "db");
    }

    #[test]
    fn problems_name_field() {
        assert_eq!(parse(r#"{"role":"x"}"#).unwrap_err().field, "type");
        assert_eq!(parse(r#"{"type":7}"#).unwrap_err().field, "type");
        let p = parse(r#"{"type":"awsRole"}"#).unwrap_err();
        assert_eq!(p.field, "role");
        assert!(p.problem.contains("missing"));
        let p = parse(r#"{"type":"awsRole","role":["a"]}"#).unwrap_err();
        assert!(p.problem.contains("a list"), "{p:?}");
        let p = parse(r#"{"type":"azureManagedIdentity","identityName":"ok-name"}"#).unwrap_err();
        assert_eq!(p.field, "resourceGroup");
    }

    #[test]
    fn serde_round_trip() {
        let c = parse(r#"{"type":"awsRole","role":"arn:aws:iam::123456789012:role/r"}"#).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: Connection = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let err =
            serde_json::from_str::<Connection>(r#"{"type":"awsRole","role":""}"#).unwrap_err();
        assert!(err.to_string().contains("field `role`"), "{err}");
    }

    #[test]
    fn aws_role_extension_keys() {
        let c = parse(
            r#"{"type":"awsRole","role":"shop-api","targetRole":"arn:aws:iam::444455556666:role/data",
                "sessionPolicy":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]},
                "mode":"podIdentity"}"#,
        )
        .unwrap();
        let Connection::AwsRole { options, .. } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            options.target_role.as_ref().map(RoleRef::as_str),
            Some("arn:aws:iam::444455556666:role/data")
        );
        assert!(
            options.session_tags_disabled(),
            "a session policy turns the tags off"
        );
        assert_eq!(options.mode, Some(AwsRoleMode::PodIdentity));
        assert_eq!(
            c.describe(),
            "awsRole shop-api -> arn:aws:iam::444455556666:role/data"
        );
        let back: Connection = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        // A policy written as a string of JSON reads the same.
        let s = parse(
            r#"{"type":"awsRole","role":"r","sessionPolicy":"{\"Statement\":{\"Effect\":\"Allow\"}}"}"#,
        )
        .unwrap();
        let Connection::AwsRole { options, .. } = &s else {
            panic!("{s:?}")
        };
        assert_eq!(
            options.session_policy.as_deref(),
            Some(r#"{"Statement":{"Effect":"Allow"}}"#)
        );
    }

    #[test]
    fn aws_role_extension_keys_name_their_field() {
        for (json, field, says) in [
            (
                r#"{"type":"awsRole","role":"r","targetRole":"data"}"#,
                "targetRole",
                "full role ARN",
            ),
            (
                r#"{"type":"awsRole","role":"r","targetRole":"arn:aws:s3:::b"}"#,
                "targetRole",
                "not an IAM role",
            ),
            (
                r#"{"type":"awsRole","role":"r","targetRole":7}"#,
                "targetRole",
                "a number",
            ),
            (
                r#"{"type":"awsRole","role":"r","disableSessionTags":"yes"}"#,
                "disableSessionTags",
                "true or false",
            ),
            (
                r#"{"type":"awsRole","role":"r","sessionPolicy":"{"}"#,
                "sessionPolicy",
                "not JSON",
            ),
            (
                r#"{"type":"awsRole","role":"r","mode":"IRSA"}"#,
                "mode",
                "mode: irsa",
            ),
            (
                r#"{"type":"awsRole","role":"r","disableSessionTags":false,"sessionPolicy":{"Statement":{"Effect":"Allow"}}}"#,
                "disableSessionTags",
                "session tags disabled",
            ),
            (
                r#"{"type":"awsRole","role":"r","mode":"irsa","targetRole":"arn:aws:iam::444455556666:role/data"}"#,
                "targetRole",
                "IRSA",
            ),
        ] {
            let p = parse(json).unwrap_err();
            assert_eq!(p.field, field, "{json}: {p:?}");
            assert!(
                p.problem.contains(says) || p.fix.contains(says),
                "{json}: {p:?}"
            );
        }
    }
}
