//! Typed, validated names: each type can only hold a value its cloud accepts.
//!
//! Every constructor returns [`Error::InvalidInput`](crate::Error::InvalidInput) naming the
//! field, what is wrong, and the fix; none panics.

mod aws_role;
mod azure;
mod gcp;
mod kubernetes;

pub use aws_role::{AwsPartition, RoleRef};
pub use azure::{AzureIdentityName, AzureResourceGroup};
pub use gcp::GcpServiceAccountEmail;
pub use kubernetes::{KubernetesName, Namespace, ServiceAccountName};

use sha2::{Digest, Sha256};

/// The first `hex_len` hex digits (at most 64) of the SHA-256 of `parts` joined by a 0 byte:
/// the stable suffix that keeps a shortened name unique. The same parts always give the same
/// digits; the 0 byte keeps `("ab", "c")` and `("a", "bc")` apart.
///
/// Used by [`ServiceAccountName::for_service`] and by providers that derive cloud resource
/// names (Azure federated identity credentials).
///
/// ```
/// use porter_identity_core::provider::stable_hash_hex;
/// let h = stable_hash_hex(&["shop", "api"], 10);
/// assert_eq!(h.len(), 10);
/// assert_eq!(h, stable_hash_hex(&["shop", "api"], 10));
/// assert_ne!(h, stable_hash_hex(&["shopa", "pi"], 10));
/// ```
pub fn stable_hash_hex(parts: &[&str], hex_len: usize) -> String {
    let mut digest = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            digest.update([0u8]);
        }
        digest.update(part.as_bytes());
    }
    digest
        .finalize()
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(hex_len)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect()
}

/// Implements `as_str`, `Display`, `AsRef<str>`, `FromStr` and serde (as a validated
/// string) for a newtype over `String`, given its `fn(&str) -> Result<Self>` validator.
macro_rules! string_newtype {
    ($ty:ident) => {
        $crate::names::string_newtype!($ty, Self::parse);
    };
    ($ty:ident, $parse:expr) => {
        impl $ty {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $parse(s)
            }
        }
        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_newtype;

/// Shows a user's value in an error message: quoted, and cut when long, so that a 50 MB
/// string does not become a 50 MB error.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}
