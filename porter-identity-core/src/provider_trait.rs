//! The `WorkloadIdentityProvider` trait and what its calls return.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use futures_util::future::Either;
use futures_util::stream::{self, StreamExt};

use crate::{
    Binding, Cloud, ClusterFacts, DEFAULT_CONCURRENCY, Error, Result, RunContext,
    ServiceAccountPatch, StaleLink, StaleQuery, VerifyReport,
};

/// What [`WorkloadIdentityProvider::bind_all`] did to the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl BindChange {
    /// `created`, `updated` or `unchanged`, stable for logs and JSON.
    ///
    /// ```
    /// use porter_identity_core::BindChange;
    /// let moved = BindChange::Updated { previous: "arn:aws:iam::111122223333:role/old".into() };
    /// assert_eq!(moved.as_str(), "updated");
    /// assert_eq!(moved.previous(), Some("arn:aws:iam::111122223333:role/old"));
    /// assert_eq!(BindChange::Created.previous(), None);
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            BindChange::Created => "created",
            BindChange::Updated { .. } => "updated",
            BindChange::Unchanged => "unchanged",
        }
    }

    /// The identity the link pointed at before, for an update.
    pub fn previous(&self) -> Option<&str> {
        match self {
            BindChange::Updated { previous } => Some(previous),
            _ => None,
        }
    }
}

/// The result of a bind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BindOutcome {
    /// What changed in the cloud.
    pub change: BindChange,
    /// The cloud's id of the link (association ID, credential resource ID, policy member).
    pub resource_id: String,
    /// What the Kubernetes side needs.
    pub service_account_patch: ServiceAccountPatch,
}

impl BindOutcome {
    /// The outcome of a bind that made `change` to the link `resource_id`, and what the
    /// Kubernetes side needs after it.
    pub fn new(
        change: BindChange,
        resource_id: impl Into<String>,
        service_account_patch: ServiceAccountPatch,
    ) -> Self {
        BindOutcome {
            change,
            resource_id: resource_id.into(),
            service_account_patch,
        }
    }

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
#[non_exhaustive]
pub enum UnbindOutcome {
    /// The link existed and was removed.
    Deleted {
        /// The cloud's id of the removed link.
        resource_id: String,
    },
    /// There was nothing to remove.
    AlreadyAbsent,
}

impl UnbindOutcome {
    /// `deleted` or `already_absent`, stable for logs and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnbindOutcome::Deleted { .. } => "deleted",
            UnbindOutcome::AlreadyAbsent => "already_absent",
        }
    }

    /// The cloud's id of the removed link, when one was removed.
    pub fn resource_id(&self) -> Option<&str> {
        match self {
            UnbindOutcome::Deleted { resource_id } => Some(resource_id),
            UnbindOutcome::AlreadyAbsent => None,
        }
    }
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
#[non_exhaustive]
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

/// The result of [`WorkloadIdentityProvider::plan_all`] for one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// What bind would do.
    pub action: PlanAction,
    /// The same in words, for a deploy log.
    pub description: String,
    /// What the Kubernetes side would need.
    pub service_account_patch: ServiceAccountPatch,
}

impl Plan {
    /// What a bind would do (`action`), in words (`description`), and what the Kubernetes side
    /// would need.
    pub fn new(
        action: PlanAction,
        description: impl Into<String>,
        service_account_patch: ServiceAccountPatch,
    ) -> Self {
        Plan {
            action,
            description: description.into(),
            service_account_patch,
        }
    }
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
/// **Batches first.** A deploy binds all of an app's workloads at once, so a provider
/// implements the batch calls — [`plan_all`](Self::plan_all), [`bind_all`](Self::bind_all),
/// [`unbind_all`](Self::unbind_all), [`verify_all`](Self::verify_all) — each returning one
/// result per binding, in input order, where one failure does not stop the others. Each takes
/// the [`RunContext`] of the run it belongs to, which counts its cloud calls and carries the
/// reads its phases share. The single-binding calls ([`plan`](Self::plan),
/// [`bind`](Self::bind), [`unbind`](Self::unbind), [`verify`](Self::verify)) are provided: a
/// batch of one, in a run of its own. [`Reconciler`](crate::Reconciler) drives a whole deploy.
///
/// What a provider author needs beside this trait is in [`crate::provider`].
///
/// ```
/// use porter_identity_core::{Binding, RunContext, WorkloadIdentityProvider};
///
/// async fn deploy(provider: &dyn WorkloadIdentityProvider, bindings: &[Binding]) {
///     let run = RunContext::apply();
///     for (binding, result) in bindings.iter().zip(provider.bind_all(&run, bindings).await) {
///         match result {
///             Ok(outcome) => println!("{binding}: {outcome}"),
///             Err(e) => eprintln!("{binding}: {e}"),
///         }
///     }
///     println!("{} cloud calls", run.calls().total());
/// }
/// ```
#[async_trait]
pub trait WorkloadIdentityProvider: Send + Sync + fmt::Debug {
    /// The cloud this provider links to.
    fn cloud(&self) -> Cloud;

    /// How many cloud calls this provider makes at once. [`DEFAULT_CONCURRENCY`] unless the
    /// provider says.
    fn concurrency(&self) -> usize {
        DEFAULT_CONCURRENCY
    }

    /// What [`bind_all`](Self::bind_all) would do, without writing: one result per binding, in
    /// input order. A binding fails where bind would fail before writing (missing role, broken
    /// trust, another app's link, …). A binding whose link key an earlier one already takes
    /// with another connection is refused ([`provider::batch_refusals`](crate::provider::batch_refusals)).
    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>>;

    /// Makes the cloud link each workload to its identity: one result per binding, in input
    /// order; one failure does not stop the others. Idempotent. A binding whose link key an
    /// earlier one already takes with another connection is refused, not bound.
    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>>;

    /// Removes each binding's link (a link that is absent is success): one result per
    /// binding, in input order; one failure does not stop the others. Idempotent.
    async fn unbind_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>>;

    /// Diagnoses each binding and its identity's permissions, without writing: one result per
    /// binding, in input order.
    async fn verify_all(&self, run: &RunContext, bindings: &[Binding])
    -> Vec<Result<VerifyReport>>;

    /// The stale links of an app, read-only: links that the previous deploy's bindings name,
    /// or (on a cloud with ownership marks) that carry the app's marks, and whose key is not
    /// desired. Each says whether it is provably the app's own ([`StaleAction::Remove`](crate::StaleAction::Remove)) or
    /// must stay, and why ([`StaleAction::Keep`](crate::StaleAction::Keep)): another app's link, an add-on's, one made by
    /// hand.
    ///
    /// The [`Reconciler`](crate::Reconciler) calls it in the same run, right after
    /// [`bind_all`](Self::bind_all) (or [`plan_all`](Self::plan_all)), so what those read and
    /// [shared](RunContext::share) serves the search.
    ///
    /// The default, for a cloud without ownership marks, trusts the previous deploy: every
    /// binding of `query.previous`, to remove, without reading the cloud.
    async fn stale_links(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        let _ = run;
        Ok(query
            .previous
            .iter()
            .map(StaleLink::from_previous)
            .collect())
    }

    /// Removes links found by [`stale_links`](Self::stale_links) with
    /// [`StaleAction::Remove`](crate::StaleAction::Remove): one result per link, in input
    /// order. The default unbinds each link's binding.
    async fn remove_stale_links(
        &self,
        run: &RunContext,
        links: &[StaleLink],
    ) -> Vec<Result<UnbindOutcome>> {
        let bindings: Vec<Binding> = links.iter().map(|l| l.binding.clone()).collect();
        self.unbind_all(run, &bindings).await
    }

    /// What this provider knows of the cluster that the Kubernetes side needs for its
    /// findings (on GKE: the node pools not in `GKE_METADATA` mode). The
    /// [`Reconciler`](crate::Reconciler) asks it, in the same run, when it has a Kubernetes
    /// step and this provider's cloud has desired bindings, and puts the answer in the
    /// report's `cluster_facts`. The default knows nothing.
    async fn cluster_facts(&self, run: &RunContext) -> Result<ClusterFacts> {
        let _ = run;
        Ok(ClusterFacts::default())
    }

    /// What [`bind`](Self::bind) would do, without writing: [`plan_all`](Self::plan_all) of
    /// one binding, in a plan run of its own.
    async fn plan(&self, binding: &Binding) -> Result<Plan> {
        single_result(
            self.cloud(),
            self.plan_all(&RunContext::plan(), std::slice::from_ref(binding))
                .await,
        )
    }

    /// Makes the cloud link the workload to the identity, idempotently:
    /// [`bind_all`](Self::bind_all) of one binding, in a run of its own.
    async fn bind(&self, binding: &Binding) -> Result<BindOutcome> {
        single_result(
            self.cloud(),
            self.bind_all(&RunContext::apply(), std::slice::from_ref(binding))
                .await,
        )
    }

    /// Removes the link, idempotently (a link that is absent is success):
    /// [`unbind_all`](Self::unbind_all) of one binding, in a run of its own.
    async fn unbind(&self, binding: &Binding) -> Result<UnbindOutcome> {
        single_result(
            self.cloud(),
            self.unbind_all(&RunContext::apply(), std::slice::from_ref(binding))
                .await,
        )
    }

    /// Diagnoses the binding and the identity's permissions, without writing:
    /// [`verify_all`](Self::verify_all) of one binding, in a plan run of its own.
    async fn verify(&self, binding: &Binding) -> Result<VerifyReport> {
        single_result(
            self.cloud(),
            self.verify_all(&RunContext::plan(), std::slice::from_ref(binding))
                .await,
        )
    }
}

/// The one result of a batch of one. A provider that broke the one-result-per-binding rule
/// gets an error naming the bug rather than a panic.
fn single_result<T>(cloud: Cloud, mut results: Vec<Result<T>>) -> Result<T> {
    match (results.pop(), results.is_empty()) {
        (Some(result), true) => result,
        (popped, _) => Err(Error::cloud(
            crate::ErrorKind::Other,
            cloud,
            "batch",
            format!(
                "the {cloud} provider answered a batch of one binding with {} results (a bug in the provider: a batch call returns one result per binding)",
                results.len() + usize::from(popped.is_some())
            ),
        )),
    }
}

/// Runs `call` on each binding that `refused` (from [`batch_refusals`](crate::provider::batch_refusals))
/// does not refuse, at most `concurrency` at a time, keeping input order: a refused binding's
/// result is its refusal. The batch of a provider whose bindings need nothing in common, or the
/// second half of one that read what they share first.
///
/// ```
/// use porter_identity_core::{Binding, Cloud, Connection, RoleRef, Workload};
/// use porter_identity_core::provider::{batch_refusals, each_binding, ensure_cloud};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let api = Workload::for_service("prod", "shop", "api")?;
/// let to = |role: &str| Binding::new(api.clone(), Connection::aws_role(RoleRef::parse(role).unwrap()));
/// let batch = [to("a"), to("b")]; // two roles for one service account: the second is refused
/// let refused = batch_refusals(&batch, true, |b| ensure_cloud(Cloud::Aws, b));
/// let results = each_binding(&batch, refused, 4, |b| async move { Ok(b.to_string()) }).await;
/// assert!(results[0].is_ok() && results[1].is_err());
/// # Ok::<(), porter_identity_core::Error>(())
/// # }).unwrap();
/// ```
pub async fn each_binding<'a, T, F, Fut>(
    bindings: &'a [Binding],
    mut refused: Vec<Option<Error>>,
    concurrency: usize,
    call: F,
) -> Vec<Result<T>>
where
    F: Fn(&'a Binding) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    refused.resize_with(bindings.len(), || None);
    // Indexes rather than references in the stream: the async-trait futures must be Send for
    // every lifetime, which closures over borrowed items do not prove.
    stream::iter(0..bindings.len())
        .map(|i| match refused[i].take() {
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
/// use porter_identity_core::provider::ensure_cloud;
/// use porter_identity_core::{Binding, Cloud, Connection, RoleRef, Workload, ErrorKind};
/// let b = Binding::new(Workload::for_service("default", "shop", "api")?,
///     Connection::aws_role(RoleRef::parse("r")?));
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
