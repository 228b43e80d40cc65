//! Azure names: user-assigned managed identity and resource group.

use super::{shown, string_newtype};
use crate::{Error, Result};

/// The name of a user-assigned managed identity (`Microsoft.ManagedIdentity/userAssignedIdentities`).
///
/// Azure accepts 3–128 characters of ASCII letters, digits, `-` and `_`, starting with a
/// letter or digit. Validating here keeps the name safe to place in an ARM URL path.
///
/// ```
/// use porter_identity_core::AzureIdentityName;
/// assert!(AzureIdentityName::parse("my-app-api-identity").is_ok());
/// assert!(AzureIdentityName::parse("-starts-with-dash").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AzureIdentityName(String);

impl AzureIdentityName {
    /// Validates a managed identity name.
    pub fn parse(value: &str) -> Result<Self> {
        const FIELD: &str = "azureManagedIdentity.identityName";
        const FIX: &str = "use the managed identity's name as the Azure portal shows it: 3 to 128 letters, digits, '-' or '_', starting with a letter or digit";
        let len = value.chars().count();
        let problem = if !(3..=128).contains(&len) {
            Some(format!("is {len} characters; Azure allows 3 to 128"))
        } else if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            Some(format!("contains {c:?}"))
        } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Some("must start with a letter or digit".to_owned())
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::invalid_input(
                FIELD,
                format!("{} {p}", shown(value)),
                FIX,
            )),
            None => Ok(AzureIdentityName(value.to_owned())),
        }
    }
}
string_newtype!(AzureIdentityName);

/// The name of an Azure resource group.
///
/// Azure accepts 1–90 characters of letters and digits (Unicode included), `_`, `(`, `)`,
/// `-` and `.`, not ending in `.`. Resource group names are case-insensitive in Azure; the
/// value is kept as written.
///
/// ```
/// use porter_identity_core::AzureResourceGroup;
/// assert!(AzureResourceGroup::parse("my-resource-group").is_ok());
/// assert!(AzureResourceGroup::parse("ends-with-dot.").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AzureResourceGroup(String);

impl AzureResourceGroup {
    /// Validates a resource group name.
    pub fn parse(value: &str) -> Result<Self> {
        const FIELD: &str = "azureManagedIdentity.resourceGroup";
        const FIX: &str = "use the resource group's name: 1 to 90 letters, digits, '_', '(', ')', '-' or '.', not ending in '.'";
        let len = value.chars().count();
        let problem = if !(1..=90).contains(&len) {
            Some(format!("is {len} characters; Azure allows 1 to 90"))
        } else if let Some(c) = value
            .chars()
            .find(|c| !(c.is_alphanumeric() || "_()-.".contains(*c)))
        {
            Some(format!("contains {c:?}"))
        } else if value.ends_with('.') {
            Some("must not end with '.'".to_owned())
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::invalid_input(
                FIELD,
                format!("{} {p}", shown(value)),
                FIX,
            )),
            None => Ok(AzureResourceGroup(value.to_owned())),
        }
    }
}
string_newtype!(AzureResourceGroup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names() {
        for ok in ["abc", "my_id-1", "9lives", &"a".repeat(128)] {
            assert!(AzureIdentityName::parse(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("ab", "2 characters"),
            (&"a".repeat(129) as &str, "129 characters"),
            ("_abc", "start with"),
            ("-abc", "start with"),
            ("has.dot", "'.'"),
            ("has/slash", "'/'"),
            ("has space", "' '"),
            ("ünï", "'ü'"),
        ] {
            let e = AzureIdentityName::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(e.contains("identityName"), "{e}");
        }
    }

    #[test]
    fn resource_groups() {
        for ok in ["a", "my-rg", "rg_(prod).1", "grüße", &"r".repeat(90)] {
            assert!(AzureResourceGroup::parse(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("", "0 characters"),
            (&"r".repeat(91) as &str, "91 characters"),
            ("rg.", "end with"),
            ("rg/x", "'/'"),
            ("rg?x", "'?'"),
            ("rg#x", "'#'"),
            ("rg%2F", "'%'"),
        ] {
            let e = AzureResourceGroup::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(e.contains("resourceGroup"), "{e}");
        }
    }
}
