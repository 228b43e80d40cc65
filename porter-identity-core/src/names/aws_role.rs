//! `RoleRef`: an IAM role given by name or by ARN.

use std::fmt;

use super::shown;
use crate::{Error, Result};

/// The AWS partitions whose IAM ARNs a [`RoleRef`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsPartition {
    /// `aws`: the commercial regions.
    Aws,
    /// `aws-cn`: the China regions.
    AwsCn,
    /// `aws-us-gov`: AWS GovCloud (US).
    AwsUsGov,
}

impl AwsPartition {
    /// The partition as it appears in an ARN.
    pub const fn as_str(self) -> &'static str {
        match self {
            AwsPartition::Aws => "aws",
            AwsPartition::AwsCn => "aws-cn",
            AwsPartition::AwsUsGov => "aws-us-gov",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "aws" => Some(AwsPartition::Aws),
            "aws-cn" => Some(AwsPartition::AwsCn),
            "aws-us-gov" => Some(AwsPartition::AwsUsGov),
            _ => None,
        }
    }
}

impl fmt::Display for AwsPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IAM role, as porter.yaml's `awsRole.role` gives it: a role name (`my-app-api-role`) or
/// a role ARN (`arn:aws:iam::123456789012:role/optional/path/my-app-api-role`).
///
/// Names follow IAM: 1–64 characters of letters, digits and `+=,.@_-`. ARNs must be in the
/// `aws`, `aws-cn` or `aws-us-gov` partition, have an empty region, a 12-digit account, and a
/// `role/` resource with an optional path (each path segment non-empty, printable ASCII,
/// at most 512 characters in all).
///
/// ```
/// use porter_identity_core::{AwsPartition, RoleRef};
///
/// let arn = RoleRef::parse("arn:aws-cn:iam::123456789012:role/teams/api/my-role")?;
/// assert_eq!(arn.partition(), Some(AwsPartition::AwsCn));
/// assert_eq!(arn.account(), Some("123456789012"));
/// assert_eq!(arn.path(), Some("/teams/api/"));
/// assert_eq!(arn.name(), "my-role");
///
/// let name = RoleRef::parse("my-role")?;
/// assert!(!name.is_arn());
/// assert_eq!(name.arn(), None);
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleRef {
    raw: String,
    arn: Option<ArnParts>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ArnParts {
    partition: AwsPartition,
    account: String,
    path: String,
}

const FIELD: &str = "awsRole.role";
const MAX_NAME: usize = 64;
const MAX_PATH: usize = 512;

impl RoleRef {
    /// Parses a role name or role ARN.
    pub fn parse(value: &str) -> Result<Self> {
        if value.starts_with("arn:") {
            Self::parse_arn(value)
        } else {
            validate_name(value, value)?;
            Ok(RoleRef {
                raw: value.to_owned(),
                arn: None,
                name: value.to_owned(),
            })
        }
    }

    fn parse_arn(value: &str) -> Result<Self> {
        let bad = |problem: String, fix: &str| {
            Error::invalid_input(FIELD, format!("{} {problem}", shown(value)), fix)
        };
        const SHAPE: &str = "write the role ARN as arn:<aws|aws-cn|aws-us-gov>:iam::<12-digit account>:role/<optional/path/>name, as IAM shows it on the role's page";
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let [_, partition, service, region, account, resource] = parts.as_slice() else {
            return Err(bad(
                "is not an ARN: it needs six ':'-separated parts".into(),
                SHAPE,
            ));
        };
        let Some(partition) = AwsPartition::parse(partition) else {
            return Err(bad(
                format!(
                    "has partition {partition:?}; only aws, aws-cn and aws-us-gov are supported"
                ),
                SHAPE,
            ));
        };
        if *service != "iam" {
            return Err(bad(
                format!("is an ARN of service {service:?}, not an IAM role"),
                SHAPE,
            ));
        }
        if !region.is_empty() {
            return Err(bad(
                format!("has region {region:?}; IAM ARNs have an empty region (`iam::`)"),
                SHAPE,
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                format!("has account {account:?}; an AWS account ID is exactly 12 digits"),
                SHAPE,
            ));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(bad(
                format!("has resource {resource:?}, which is not a role (`role/...`)"),
                SHAPE,
            ));
        };
        let (path, name) = match path_and_name.rfind('/') {
            Some(i) => (
                format!("/{}", &path_and_name[..=i]),
                &path_and_name[i + 1..],
            ),
            None => ("/".to_owned(), path_and_name),
        };
        validate_path(&path, value)?;
        validate_name(name, value)?;
        Ok(RoleRef {
            raw: value.to_owned(),
            arn: Some(ArnParts {
                partition,
                account: (*account).to_owned(),
                path,
            }),
            name: name.to_owned(),
        })
    }

    /// The role's name (the last part of an ARN).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the role was given as an ARN.
    pub fn is_arn(&self) -> bool {
        self.arn.is_some()
    }

    /// The ARN, when the role was given as one.
    pub fn arn(&self) -> Option<&str> {
        self.arn.as_ref().map(|_| self.raw.as_str())
    }

    /// The partition, when given as an ARN.
    pub fn partition(&self) -> Option<AwsPartition> {
        self.arn.as_ref().map(|a| a.partition)
    }

    /// The 12-digit account, when given as an ARN.
    pub fn account(&self) -> Option<&str> {
        self.arn.as_ref().map(|a| a.account.as_str())
    }

    /// The role's path (`/` or `/a/b/`), when given as an ARN.
    pub fn path(&self) -> Option<&str> {
        self.arn.as_ref().map(|a| a.path.as_str())
    }

    /// The value as written in porter.yaml.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

fn validate_name(name: &str, whole: &str) -> Result<()> {
    let fix = "use the role's name as IAM shows it: 1 to 64 letters, digits and +=,.@_- (or its full ARN)";
    if name.is_empty() {
        return Err(Error::invalid_input(
            FIELD,
            format!("{}: the role name is empty", shown(whole)),
            fix,
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(Error::invalid_input(
            FIELD,
            format!(
                "{}: the role name is {} characters; IAM allows at most {MAX_NAME}",
                shown(whole),
                name.chars().count()
            ),
            fix,
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)))
    {
        return Err(Error::invalid_input(
            FIELD,
            format!("{}: the role name contains {c:?}", shown(whole)),
            fix,
        ));
    }
    Ok(())
}

fn validate_path(path: &str, whole: &str) -> Result<()> {
    let fix = "a role path is `/` or `/segment/.../` of printable ASCII, at most 512 characters";
    if path.len() > MAX_PATH {
        return Err(Error::invalid_input(
            FIELD,
            format!(
                "{}: the role path is {} characters",
                shown(whole),
                path.len()
            ),
            fix,
        ));
    }
    if path.contains("//") {
        return Err(Error::invalid_input(
            FIELD,
            format!("{}: the role path has an empty segment", shown(whole)),
            fix,
        ));
    }
    if let Some(c) = path.chars().find(|c| !('\u{21}'..='\u{7e}').contains(c)) {
        return Err(Error::invalid_input(
            FIELD,
            format!("{}: the role path contains {c:?}", shown(whole)),
            fix,
        ));
    }
    Ok(())
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for RoleRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for RoleRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> serde::Deserialize<'de> for RoleRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_valid() {
        for name in ["r", "my-app-api-role", "A+b=c,d.e@f_g-h", &"x".repeat(64)] {
            let r = RoleRef::parse(name).unwrap();
            assert_eq!(r.name(), name);
            assert!(!r.is_arn());
            assert_eq!(r.partition(), None);
            assert_eq!(r.account(), None);
            assert_eq!(r.path(), None);
        }
    }

    #[test]
    fn names_invalid() {
        for (name, needle) in [
            ("", "empty"),
            (&"x".repeat(65) as &str, "65 characters"),
            ("has space", "contains ' '"),
            ("slash/inside", "contains '/'"),
            ("ünïcode", "contains 'ü'"),
            ("colon:x", "contains ':'"),
        ] {
            let err = RoleRef::parse(name).unwrap_err().to_string();
            assert!(err.contains(needle), "{name:?}: {err}");
            assert!(err.contains("awsRole.role"), "{err}");
        }
    }

    #[test]
    fn each_partition() {
        for (p, want) in [
            ("aws", AwsPartition::Aws),
            ("aws-cn", AwsPartition::AwsCn),
            ("aws-us-gov", AwsPartition::AwsUsGov),
        ] {
            let r = RoleRef::parse(&format!("arn:{p}:iam::123456789012:role/x")).unwrap();
            assert_eq!(r.partition(), Some(want));
            assert_eq!(r.partition().unwrap().as_str(), p);
            assert_eq!(r.path(), Some("/"));
        }
        let err = RoleRef::parse("arn:aws-iso:iam::123456789012:role/x").unwrap_err();
        assert!(err.to_string().contains("\"aws-iso\""), "{err}");
    }

    #[test]
    fn account_must_be_twelve_digits() {
        assert!(RoleRef::parse("arn:aws:iam::000000000000:role/x").is_ok());
        for account in ["12345678901", "1234567890123", "12345678901a", ""] {
            let err = RoleRef::parse(&format!("arn:aws:iam::{account}:role/x")).unwrap_err();
            assert!(err.to_string().contains("12 digits"), "{account}: {err}");
        }
    }

    #[test]
    fn paths() {
        let r = RoleRef::parse("arn:aws:iam::123456789012:role/a/b/c-role").unwrap();
        assert_eq!(r.path(), Some("/a/b/"));
        assert_eq!(r.name(), "c-role");
        assert_eq!(r.arn(), Some("arn:aws:iam::123456789012:role/a/b/c-role"));
        let long_ok = format!("arn:aws:iam::123456789012:role/{}/n", "p".repeat(510));
        assert!(RoleRef::parse(&long_ok).is_ok());
        let too_long = format!("arn:aws:iam::123456789012:role/{}/n", "p".repeat(511));
        assert!(RoleRef::parse(&too_long).is_err());
        assert!(RoleRef::parse("arn:aws:iam::123456789012:role/a//n").is_err());
        assert!(RoleRef::parse("arn:aws:iam::123456789012:role/a/").is_err());
    }

    #[test]
    fn arns_invalid() {
        for (arn, needle) in [
            ("arn:aws:iam::123456789012", "six"),
            ("arn:aws:s3::123456789012:role/x", "service \"s3\""),
            ("arn:aws:iam:us-east-1:123456789012:role/x", "region"),
            ("arn:aws:iam::123456789012:user/x", "not a role"),
            ("arn:aws:iam::123456789012:role/", "empty"),
            ("arn:aws:iam::123456789012:role/a b", "' '"),
        ] {
            let err = RoleRef::parse(arn).unwrap_err().to_string();
            assert!(err.contains(needle), "{arn}: {err}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let r: RoleRef = serde_json::from_str("\"arn:aws:iam::123456789012:role/x\"").unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"arn:aws:iam::123456789012:role/x\""
        );
        assert!(serde_json::from_str::<RoleRef>("\"bad name\"").is_err());
    }
}
