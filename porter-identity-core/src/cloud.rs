//! The clouds porter-identity links workloads to.

use std::fmt;

/// A cloud with a workload-identity mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cloud {
    /// Amazon Web Services: EKS Pod Identity.
    Aws,
    /// Microsoft Azure: federated identity credentials on managed identities.
    Azure,
    /// Google Cloud: GKE Workload Identity.
    Gcp,
}

impl Cloud {
    /// The lowercase name: `aws`, `azure`, `gcp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }

    /// The porter.yaml connection `type` this cloud serves.
    pub const fn connection_type(self) -> &'static str {
        match self {
            Cloud::Aws => "awsRole",
            Cloud::Azure => "azureManagedIdentity",
            Cloud::Gcp => "gcpServiceAccount",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
