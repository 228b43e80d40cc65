//! Stale links: links that an earlier deploy of an app made and that its desired set no longer
//! wants — and the proof that they are the app's own, without which none is removed.

use std::fmt;

use crate::{Binding, KubernetesName, Namespace};

/// What the [`Reconciler`](crate::Reconciler) asks one provider about the stale links of an
/// app; see [`WorkloadIdentityProvider::stale_links`](crate::WorkloadIdentityProvider::stale_links).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StaleQuery<'a> {
    /// The app being deployed.
    pub app: &'a KubernetesName,
    /// The namespace it is deployed to.
    pub namespace: &'a Namespace,
    /// This provider's desired bindings: their links are never stale.
    pub desired: &'a [Binding],
    /// This provider's bindings of the previous deploy whose [link key](Binding::link_key) is
    /// not desired any more: stale, if their links still exist and are provably the app's.
    pub previous: &'a [Binding],
}

/// Why a stale link is known to be the app's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Evidence {
    /// The previous deploy's bindings name it (every cloud).
    PreviousDeploy,
    /// It carries the app's ownership marks (AWS: the `porter-identity/app` tag and
    /// `managed-by: porter-identity`).
    OwnershipMarks,
}

impl Evidence {
    /// `previous_deploy` or `ownership_marks`, stable for logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Evidence::PreviousDeploy => "previous_deploy",
            Evidence::OwnershipMarks => "ownership_marks",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Evidence::PreviousDeploy => "named by the previous deploy",
            Evidence::OwnershipMarks => "carries the app's ownership marks",
        })
    }
}

/// What becomes of a stale link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleAction {
    /// It is provably the app's own and nothing desired uses it: remove it.
    Remove,
    /// It must stay, for the reason given (another app's, an add-on's, made by hand, …).
    Keep {
        /// Why, in words, with what the user can do about it.
        reason: String,
    },
}

/// A link that the desired set of an app no longer wants, found by
/// [`WorkloadIdentityProvider::stale_links`](crate::WorkloadIdentityProvider::stale_links).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StaleLink {
    /// The workload and connection of the link (from the previous deploy, or rebuilt from the
    /// link's ownership marks).
    pub binding: Binding,
    /// The cloud's id of the link, when the provider read it.
    pub resource_id: Option<String>,
    /// Why it is known to be the app's.
    pub evidence: Evidence,
    /// Remove it, or keep it and why.
    pub action: StaleAction,
}

impl<'a> StaleQuery<'a> {
    /// The question about app `app` in `namespace`: which links of `previous` (and, on a cloud
    /// with ownership marks, of the app's marks) are stale, given `desired`. The
    /// [`Reconciler`](crate::Reconciler) asks it; a test of a provider may too.
    pub fn new(
        app: &'a KubernetesName,
        namespace: &'a Namespace,
        desired: &'a [Binding],
        previous: &'a [Binding],
    ) -> Self {
        StaleQuery {
            app,
            namespace,
            desired,
            previous,
        }
    }
}

impl StaleLink {
    /// A link provably the app's own, by `evidence`, to remove; `resource_id` when the
    /// provider read it.
    pub fn remove(binding: Binding, resource_id: Option<String>, evidence: Evidence) -> Self {
        StaleLink {
            binding,
            resource_id,
            evidence,
            action: StaleAction::Remove,
        }
    }

    /// A stale-looking link that must stay, for `reason` (with what the user can do about it).
    pub fn keep(
        binding: Binding,
        resource_id: Option<String>,
        evidence: Evidence,
        reason: impl Into<String>,
    ) -> Self {
        StaleLink {
            binding,
            resource_id,
            evidence,
            action: StaleAction::Keep {
                reason: reason.into(),
            },
        }
    }

    /// A link named by the previous deploy, to remove, not read from the cloud: what a
    /// provider that has no ownership marks knows of it.
    pub fn from_previous(binding: &Binding) -> Self {
        StaleLink {
            binding: binding.clone(),
            resource_id: None,
            evidence: Evidence::PreviousDeploy,
            action: StaleAction::Remove,
        }
    }
}
