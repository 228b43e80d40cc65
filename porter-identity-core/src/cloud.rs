//! The clouds porter-identity links workloads to.

use std::fmt;

/// A cloud with a workload-identity mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
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

    /// The cloud's name as its vendor writes it: `AWS`, `Azure`, `Google Cloud`.
    pub const fn display_name(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Azure => "Azure",
            Cloud::Gcp => "Google Cloud",
        }
    }

    /// The vendor's public status page, named in the fix of errors a retry could not resolve.
    pub const fn status_page(self) -> &'static str {
        match self {
            Cloud::Aws => "https://health.aws.amazon.com/health/status",
            Cloud::Azure => "https://azure.status.microsoft/status",
            Cloud::Gcp => "https://status.cloud.google.com",
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
