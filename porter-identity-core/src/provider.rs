//! The `WorkloadIdentityProvider` trait and what its calls return.

use std::fmt;

use async_trait::async_trait;

use crate::{Binding, Cloud, Error, Result, ServiceAccountPatch, VerifyReport};

/// What [`WorkloadIdentityProvider::bind`] did to the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindChange {
    /// A new link was made.
    Created,
    /// An existing link pointed at another identity and now points at this one.
    Updated {
        /// The identity it pointed at before (a role ARN, an issuer, …).
        previous: String,
    },
    /// The link already existed as asked: nothing was written.
    Unchanged,
}

/// The result of a bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOutcome {
    /// What changed in the cloud.
    pub change: BindChange,
    /// The cloud's id of the link (association ID, credential resource ID, policy member).
    pub resource_id: String,
    /// What the Kubernetes side needs.
    pub service_account_patch: ServiceAccountPatch,
}

impl BindOutcome {
    /// Whether the bind wrote anything.
    pub fn is_changed(&self) -> bool {
        self.change != BindChange::Unchanged
    }
}

impl fmt::Display for BindOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            BindChange::Created => write!(f, "created {}", self.resource_id),
            BindChange::Updated { previous } => {
                write!(f, "updated {} (was {previous})", self.resource_id)
            }
            BindChange::Unchanged => write!(f, "unchanged {}", self.resource_id),
        }
    }
}

/// The result of an unbind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnbindOutcome {
    /// The link existed and was removed.
    Deleted {
        /// The cloud's id of the removed link.
        resource_id: String,
    },
    /// There was nothing to remove.
    AlreadyAbsent,
}

impl fmt::Display for UnbindOutcome {
    /// `deleted <resource id>` or `already absent`, for a deploy log.
    ///
    /// ```
    /// use porter_identity_core::UnbindOutcome;
    /// let deleted = UnbindOutcome::Deleted { resource_id: "a-123".into() };
    /// assert_eq!(deleted.to_string(), "deleted a-123");
    /// assert_eq!(UnbindOutcome::AlreadyAbsent.to_string(), "already absent");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnbindOutcome::Deleted { resource_id } => write!(f, "deleted {resource_id}"),
            UnbindOutcome::AlreadyAbsent => f.write_str("already absent"),
        }
    }
}

/// What a bind would do, found without writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanAction {
    /// Create a link.
    Create,
    /// Point an existing link at another identity.
    Update {
        /// The identity it points at now.
        current: String,
    },
    /// Nothing to do.
    Unchanged,
}

/// The result of [`WorkloadIdentityProvider::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What bind would do.
    pub action: PlanAction,
    /// The same in words, for a deploy log.
    pub description: String,
    /// What the Kubernetes side would need.
    pub service_account_patch: ServiceAccountPatch,
}

/// A cloud's workload-identity mechanism, for one cluster.
///
/// Every method takes a [`Binding`]; a binding whose connection is of another cloud is an
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error. `bind` and `unbind` are
/// idempotent and safe to call on every deploy, from several processes at once; `plan` and
/// `verify` never write.
///
/// ```
/// use porter_identity_core::{Binding, WorkloadIdentityProvider};
///
/// async fn deploy(provider: &dyn WorkloadIdentityProvider, bindings: &[Binding]) -> porter_identity_core::Result<()> {
///     for binding in bindings {
///         let outcome = provider.bind(binding).await?;
///         println!("{binding}: {outcome}");
///     }
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait WorkloadIdentityProvider: Send + Sync + fmt::Debug {
    /// The cloud this provider links to.
    fn cloud(&self) -> Cloud;

    /// What [`bind`](Self::bind) would do, without writing. Fails where bind would fail
    /// before writing (missing role, broken trust, …).
    async fn plan(&self, binding: &Binding) -> Result<Plan>;

    /// Makes the cloud link the workload to the identity. Idempotent.
    async fn bind(&self, binding: &Binding) -> Result<BindOutcome>;

    /// Removes the link; a link that is absent is success. Idempotent.
    async fn unbind(&self, binding: &Binding) -> Result<UnbindOutcome>;

    /// Diagnoses the binding and the identity's permissions, without writing.
    async fn verify(&self, binding: &Binding) -> Result<VerifyReport>;
}

/// Checks that `binding` is for `cloud`: the common first line of every provider method.
///
/// ```
/// use porter_identity_core::{ensure_cloud, Binding, Cloud, Connection, RoleRef, Workload, ErrorKind};
/// let b = Binding::new(Workload::for_service("default", "shop", "api")?,
///     Connection::AwsRole { role: RoleRef::parse("r")? });
/// assert!(ensure_cloud(Cloud::Aws, &b).is_ok());
/// assert_eq!(ensure_cloud(Cloud::Gcp, &b).unwrap_err().kind(), ErrorKind::InvalidInput);
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
pub fn ensure_cloud(cloud: Cloud, binding: &Binding) -> Result<()> {
    if binding.connection.cloud() == Some(cloud) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "binding.connection",
            format!(
                "is `{}`, but this is the {cloud} provider (it takes `{}` connections)",
                binding.connection.type_name(),
                cloud.connection_type()
            ),
            format!(
                "pass this binding to the provider of its cloud; use AppManifest::bindings_for(Cloud::{cloud:?}, ..) to select the {cloud} ones"
            ),
        ))
    }
}
