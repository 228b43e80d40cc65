//! EKS Pod Identity for porter-identity.
#![allow(missing_docs)]

pub mod api;
pub mod codes;
pub mod lint;
pub mod policy;
mod provider;
pub mod sdk;
pub mod trust;

#[cfg(feature = "fake")]
pub mod fake;
