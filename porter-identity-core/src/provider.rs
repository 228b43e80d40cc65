//! The `WorkloadIdentityProvider` trait and what its calls return.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use futures_util::future::Either;
use futures_util::stream::{self, StreamExt};

use crate::{
    Binding, Cloud, DEFAULT_CONCURRENCY, Error, Result, ServiceAccountPatch, StaleLink, StaleQuery,
    VerifyReport, link_conflicts,
};

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
/// Every method takes [`Binding`]s; a binding whose connection is of another cloud is an
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error. `bind` and `unbind` are
/// idempotent and safe to call on every deploy, from several processes at once; `plan`,
/// `verify` and `stale_links` never write.
///
/// **Ownership.** A link that carries the ownership marks of another app or service (on AWS,
/// the association's `porter-identity/app` and `porter-identity/service` tags) is never changed
/// or removed: `bind`, `unbind` and `plan` answer [`ErrorKind::Conflict`](crate::ErrorKind::Conflict)
/// naming its owner, and `verify` reports it. A link without marks is adopted.
///
/// **Batches.** A deploy binds all of an app's workloads at once: [`bind_all`](Self::bind_all),
/// [`plan_all`](Self::plan_all) and [`unbind_all`](Self::unbind_all) return one result per
/// binding, in input order, and one failure does not stop the others. Their default
/// implementations call the single-binding method for each, at most
/// [`concurrency`](Self::concurrency) at a time; a provider overrides them to share reads (one
/// listing per namespace on AWS). [`Reconciler`](crate::Reconciler) drives a whole deploy.
///
/// ```
/// use porter_identity_core::{Binding, WorkloadIdentityProvider};
///
/// async fn deploy(provider: &dyn WorkloadIdentityProvider, bindings: &[Binding]) {
///     for (binding, result) in bindings.iter().zip(provider.bind_all(bindings).await) {
///         match result {
///             Ok(outcome) => println!("{binding}: {outcome}"),
///             Err(e) => eprintln!("{binding}: {e}"),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait WorkloadIdentityProvider: Send + Sync + fmt::Debug {
    /// The cloud this provider links to.
    fn cloud(&self) -> Cloud;

    /// What [`bind`](Self::bind) would do, without writing. Fails where bind would fail
    /// before writing (missing role, broken trust, another app's link, …).
    async fn plan(&self, binding: &Binding) -> Result<Plan>;

    /// Makes the cloud link the workload to the identity. Idempotent.
    async fn bind(&self, binding: &Binding) -> Result<BindOutcome>;

    /// Removes the link; a link that is absent is success. Idempotent.
    async fn unbind(&self, binding: &Binding) -> Result<UnbindOutcome>;

    /// Diagnoses the binding and the identity's permissions, without writing.
    async fn verify(&self, binding: &Binding) -> Result<VerifyReport>;

    /// How many cloud calls this provider makes at once, and how many bindings the default
    /// batch methods work on at once. [`DEFAULT_CONCURRENCY`] unless the provider says.
    fn concurrency(&self) -> usize {
        DEFAULT_CONCURRENCY
    }

    /// [`plan`](Self::plan) of every binding: one result per binding, in input order. A
    /// binding whose link key an earlier one already takes with another connection is
    /// refused ([`link_conflicts`]).
    async fn plan_all(&self, bindings: &[Binding]) -> Vec<Result<Plan>> {
        each_unless_conflicting(bindings, self.concurrency(), |b| self.plan(b)).await
    }

    /// [`bind`](Self::bind) of every binding: one result per binding, in input order; one
    /// failure does not stop the others. A binding whose link key an earlier one already
    /// takes with another connection is refused ([`link_conflicts`]), not bound.
    async fn bind_all(&self, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        each_unless_conflicting(bindings, self.concurrency(), |b| self.bind(b)).await
    }

    /// [`unbind`](Self::unbind) of every binding: one result per binding, in input order; one
    /// failure does not stop the others.
    async fn unbind_all(&self, bindings: &[Binding]) -> Vec<Result<UnbindOutcome>> {
        stream::iter(0..bindings.len())
            .map(|i| self.unbind(&bindings[i]))
            .buffered(self.concurrency().max(1))
            .collect()
            .await
    }

    /// The stale links of an app, read-only: links that the previous deploy's bindings name,
    /// or (on a cloud with ownership marks) that carry the app's marks, and whose key is not
    /// desired. Each says whether it is provably the app's own ([`StaleAction::Remove`](crate::StaleAction::Remove)) or
    /// must stay, and why ([`StaleAction::Keep`](crate::StaleAction::Keep)): another app's link, an add-on's, one made by
    /// hand.
    ///
    /// The default, for a cloud without ownership marks, trusts the previous deploy: every
    /// binding of `query.previous`, to remove, without reading the cloud.
    async fn stale_links(&self, query: &StaleQuery<'_>) -> Result<Vec<StaleLink>> {
        Ok(query
            .previous
            .iter()
            .map(StaleLink::from_previous)
            .collect())
    }

    /// Removes links found by [`stale_links`](Self::stale_links) with
    /// [`StaleAction::Remove`](crate::StaleAction::Remove): one result per link, in input order. The default unbinds each
    /// link's binding.
    async fn remove_stale_links(&self, links: &[StaleLink]) -> Vec<Result<UnbindOutcome>> {
        let bindings: Vec<Binding> = links.iter().map(|l| l.binding.clone()).collect();
        self.unbind_all(&bindings).await
    }
}

/// Runs `call` on every binding that [`link_conflicts`] does not refuse, `concurrency` at a
/// time, keeping input order.
async fn each_unless_conflicting<'a, T, F, Fut>(
    bindings: &'a [Binding],
    concurrency: usize,
    call: F,
) -> Vec<Result<T>>
where
    F: Fn(&'a Binding) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut conflicts = link_conflicts(bindings);
    // Indexes rather than references in the stream: the async-trait futures must be Send for
    // every lifetime, which closures over borrowed items do not prove.
    stream::iter(0..bindings.len())
        .map(|i| match conflicts[i].take() {
            Some(e) => Either::Right(std::future::ready(Err(e))),
            None => Either::Left(call(&bindings[i])),
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
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
