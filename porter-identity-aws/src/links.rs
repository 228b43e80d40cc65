//! Batches: `plan_all`, `bind_all` and `unbind_all` (and the single-binding calls, as batches
//! of one). One listing per namespace, following every page, serves the whole batch: as each
//! page arrives, the associations of the batch's service accounts are described while the next
//! page is fetched; service accounts the listing did not find are created once it is complete.
//! Only what differs is written.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::pin;

use futures_util::future::{Either, join, join_all, select, try_join};
use futures_util::stream::{self, StreamExt};
use porter_identity_core::provider::{batch_refusals, batch_results};
use porter_identity_core::{
    AwsRoleMode, BindChange, BindOutcome, Binding, Cloud, Error, ErrorKind, Operation, Plan,
    PlanAction, Result, RunContext, UnbindOutcome,
};
use tokio::sync::{OnceCell, mpsc};

use crate::api::{Association, AssociationSettings, AssociationSummary, RoleInfo};
use crate::operation as op;
use crate::ownership::{self, Owner};
use crate::provider::{AwsPodIdentityProvider, chain_of};
use crate::target_role::ChainCheck;

/// What the listing found for one binding: its service account's association, none, or the
/// error that kept the listing from saying.
type Found = Result<Option<AssociationSummary>>;

/// A binding's service account's association, against the binding's role and settings.
enum Current {
    /// None: create one.
    None,
    /// One with the binding's role, target role, session tags and policy: nothing to do.
    Same(Association),
    /// One that differs in any of them: update it in place.
    Other(Association),
}

/// What `current` found for one binding: its checked role, what it asks of the association
/// beside the role, its association, and how its target role (if any) was checked.
struct Checked {
    role: RoleInfo,
    wanted: AssociationSettings,
    current: Current,
    chain: ChainCheck,
}

/// The role checks of one batch: one check per distinct role, its result (error included)
/// shared by every binding of that role, so a missing role costs one GetRole, not one per
/// workload.
struct RoleChecks<'b> {
    roles: HashMap<String, OnceCell<Result<RoleInfo>>>,
    /// The first admitted binding of each role, to start its check with.
    firsts: Vec<&'b Binding>,
}

impl<'b> RoleChecks<'b> {
    fn new(admitted: impl Iterator<Item = &'b Binding>) -> Self {
        let mut roles = HashMap::new();
        let mut firsts = Vec::new();
        for b in admitted {
            if let Ok(role) = AwsPodIdentityProvider::role_ref(b)
                && !roles.contains_key(role.as_str())
            {
                roles.insert(role.as_str().to_owned(), OnceCell::new());
                firsts.push(b);
            }
        }
        RoleChecks { roles, firsts }
    }

    async fn check(
        &self,
        provider: &AwsPodIdentityProvider,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<RoleInfo> {
        let role = AwsPodIdentityProvider::role_ref(binding)?;
        match self.roles.get(role.as_str()) {
            Some(cell) => cell
                .get_or_init(|| provider.checked_role(run, binding))
                .await
                .clone(),
            None => provider.checked_role(run, binding).await,
        }
    }
}

/// Runs `main` with `warm_up` beside it, and returns `main`'s output as soon as it has one:
/// the warm-up is dropped then, whatever it was doing.
async fn beside<T>(main: impl Future<Output = T>, warm_up: impl Future<Output = ()>) -> T {
    let warm_up = async {
        warm_up.await;
        std::future::pending::<()>().await;
    };
    match select(pin!(main), pin!(warm_up)).await {
        Either::Left((out, _)) => out,
        Either::Right(((), _)) => unreachable!("the warm-up never ends"),
    }
}

impl AwsPodIdentityProvider {
    pub(crate) async fn plan_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<Plan>> {
        let (refused, roles) = self.admit(bindings);
        let work = |i: usize, found| self.plan_one(run, &bindings[i], found, &roles);
        beside(
            self.each_with_association(run, bindings, refused, work),
            self.prefetch_roles(run, &roles),
        )
        .await
    }

    pub(crate) async fn bind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<BindOutcome>> {
        let (refused, roles) = self.admit(bindings);
        let work = |i: usize, found| self.bind_one(run, &bindings[i], found, &roles);
        beside(
            self.each_with_association(run, bindings, refused, work),
            self.prefetch_roles(run, &roles),
        )
        .await
    }

    pub(crate) async fn unbind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        let refused = self.refusals(bindings, false);
        let work = |i: usize, found| self.unbind_one(run, &bindings[i], found, false);
        self.each_with_association(run, bindings, refused, work)
            .await
    }

    /// The refusals of a plan or bind batch, and the role checks of the bindings it admits.
    fn admit<'b>(&self, bindings: &'b [Binding]) -> (Vec<Option<Error>>, RoleChecks<'b>) {
        let refused = self.refusals(bindings, true);
        // IRSA bindings check their roles their own way (no Pod Identity trust).
        let roles = RoleChecks::new(
            bindings
                .iter()
                .zip(&refused)
                .filter(|(b, r)| r.is_none() && self.mode_of(b) == AwsRoleMode::PodIdentity)
                .map(|(b, _)| b),
        );
        (refused, roles)
    }

    /// Bindings refused before any call: of another cloud, or (plan and bind) fighting over one
    /// link with an earlier binding of the batch.
    fn refusals(&self, bindings: &[Binding], conflicts: bool) -> Vec<Option<Error>> {
        batch_refusals(bindings, conflicts, |b| Self::role_ref(b).map(drop))
    }

    /// Starts every role check of the batch at once, beside the listing: by the time a
    /// binding needs its role, it is usually known. Only a warm-up: each binding awaits its
    /// own role's check, so the prefetch is dropped once every binding is done (a listing that
    /// failed leaves its bindings' roles unchecked, not checked to no end).
    async fn prefetch_roles(&self, run: &RunContext, roles: &RoleChecks<'_>) {
        join_all(roles.firsts.iter().map(|b| roles.check(self, run, b))).await;
    }

    /// Runs `work` for every binding not `refused`, with the association its service account
    /// has (or none), found by one listing of each namespace. Results in input order.
    ///
    /// The listing of a namespace feeds a channel page by page; the work of each binding starts
    /// as soon as its service account is seen (or, if unseen, when the listing is complete),
    /// while the next page is fetched. All in this task: the provider's gate bounds the calls.
    async fn each_with_association<T, F, Fut>(
        &self,
        run: &RunContext,
        bindings: &[Binding],
        refused: Vec<Option<Error>>,
        work: F,
    ) -> Vec<Result<T>>
    where
        F: Fn(usize, Option<AssociationSummary>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut results: Vec<Option<Result<T>>> = refused.into_iter().map(|e| e.map(Err)).collect();
        let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, b) in bindings.iter().enumerate() {
            if results[i].is_none() {
                by_namespace
                    .entry(b.workload.namespace().as_str())
                    .or_default()
                    .push(i);
            }
        }
        let (found_tx, mut found_rx) = mpsc::unbounded_channel::<(usize, Found)>();
        let listings = join_all(by_namespace.into_iter().map(|(namespace, wanted)| {
            self.list_for(run, namespace, wanted, bindings, found_tx.clone())
        }));
        drop(found_tx);
        let found = stream::poll_fn(|cx| found_rx.poll_recv(cx));
        let done = found
            .map(|(i, found)| {
                let work = &work;
                async move {
                    let result = match found {
                        Ok(found) => work(i, found).await,
                        Err(e) => Err(e),
                    };
                    (i, result)
                }
            })
            .buffer_unordered(bindings.len().max(1))
            .collect::<Vec<_>>();
        let (_, done) = join(listings, done).await;
        for (i, result) in done {
            results[i] = Some(result);
        }
        batch_results(
            Cloud::Aws,
            op::LIST_POD_IDENTITY_ASSOCIATIONS.name(),
            results,
        )
    }

    /// Lists `namespace` (only the one service account when the batch wants one) and sends
    /// each wanted binding what was found for it.
    async fn list_for(
        &self,
        run: &RunContext,
        namespace: &str,
        wanted: Vec<usize>,
        bindings: &[Binding],
        found: mpsc::UnboundedSender<(usize, Found)>,
    ) {
        let mut by_account: HashMap<&str, Vec<usize>> = HashMap::new();
        for i in wanted {
            by_account
                .entry(bindings[i].workload.service_account().as_str())
                .or_default()
                .push(i);
        }
        // One service account: a filtered listing (one page) beats the namespace's pages.
        let only = (by_account.len() == 1)
            .then(|| by_account.keys().next().copied())
            .flatten();
        let mut pages = pin!(self.list(run, Some(namespace), only));
        // The whole namespace, kept for this reconcile's stale-link search.
        let mut listed: Vec<AssociationSummary> = Vec::new();
        // A send fails only when the receiver is gone, i.e. the batch was dropped: nothing to
        // tell anyone then.
        while let Some(page) = pages.next().await {
            match page {
                Ok(summaries) => {
                    if only.is_none() {
                        listed.extend(summaries.iter().cloned());
                    }
                    for s in summaries {
                        for i in by_account
                            .remove(s.service_account.as_str())
                            .unwrap_or_default()
                        {
                            let _ = found.send((i, Ok(Some(s.clone()))));
                        }
                    }
                }
                Err(e) => {
                    for i in by_account.drain().flat_map(|(_, is)| is) {
                        let _ = found.send((i, Err(e.clone())));
                    }
                    // Even a filtered listing that failed tells the stale-link search of this
                    // run what listing the namespace would meet: one failure, one budget.
                    run.share(self.namespace_listing(namespace), Err(e));
                    return;
                }
            }
        }
        for i in by_account.into_values().flatten() {
            let _ = found.send((i, Ok(None)));
        }
        if only.is_none() {
            run.share(self.namespace_listing(namespace), Ok(listed));
        }
    }

    /// The binding's checked role and its service account's association now, compared.
    /// `found` is what the listing saw; one deleted since is treated as none. Fails, before
    /// any write, on the role checks and on an association of an add-on or of another owner.
    async fn current(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
        roles: &RoleChecks<'_>,
        operation: Operation,
    ) -> Result<Checked> {
        let wanted = Self::wanted_settings(binding)?;
        let (role, current) = self
            .current_association(run, binding, found, roles, operation, &wanted)
            .await?;
        // The target role's external ID is the association's, while it keeps that target.
        let external_id = match &current {
            Current::Same(a) | Current::Other(a)
                if a.settings.target_role_arn == wanted.target_role_arn =>
            {
                a.external_id.as_deref()
            }
            _ => None,
        };
        let chain = self
            .check_chain(run, binding, &role, external_id, false)
            .await?;
        Ok(Checked {
            role,
            wanted,
            current,
            chain,
        })
    }

    async fn current_association(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
        roles: &RoleChecks<'_>,
        operation: Operation,
        wanted: &AssociationSettings,
    ) -> Result<(RoleInfo, Current)> {
        let Some(summary) = found else {
            return Ok((roles.check(self, run, binding).await?, Current::None));
        };
        if let Some(owner) = &summary.owner_arn {
            return Err(self.addon_owned(binding, owner, operation));
        }
        // The role check and the describe are independent reads: make them together, and
        // stop both when either fails.
        let described = async {
            match self.describe(run, &summary.association_id).await {
                Ok(a) => Ok(Some(a)),
                // Deleted since the listing: none.
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        let (role, described) = try_join(roles.check(self, run, binding), described).await?;
        let Some(association) = described else {
            return Ok((role, Current::None));
        };
        ownership::check(binding, &association, &self.cluster, operation)?;
        let current = if association.role_arn == role.arn && association.settings.same_as(wanted) {
            Current::Same(association)
        } else {
            Current::Other(association)
        };
        Ok((role, current))
    }

    async fn plan_one(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
        roles: &RoleChecks<'_>,
    ) -> Result<Plan> {
        if self.mode_of(binding) == AwsRoleMode::Irsa {
            return self.plan_irsa(run, binding, found).await;
        }
        let Checked {
            role,
            wanted,
            current,
            chain,
        } = self
            .current(
                run,
                binding,
                found,
                roles,
                op::LIST_POD_IDENTITY_ASSOCIATIONS,
            )
            .await?;
        let w = &binding.workload;
        let to = match &wanted.target_role_arn {
            Some(target) => format!("{} -> {target}", role.arn),
            None => role.arn.clone(),
        };
        // The link as it is, when this plan leaves it so: when it last changed.
        let unchanged_since = match &current {
            Current::Same(a) => a.changed_at,
            _ => None,
        };
        let (action, description) = match current {
            Current::None => (
                PlanAction::Create,
                format!(
                    "create a Pod Identity association of {w} to {to} in cluster {}",
                    self.cluster
                ),
            ),
            Current::Same(_) => (
                PlanAction::Unchanged,
                format!("{w} is already associated with {to}"),
            ),
            Current::Other(a) => {
                let from = chain_of(&a);
                let what = if from == to {
                    format!("the session settings of the association of {w} ({to})")
                } else {
                    format!("the association of {w} from {from} to {to}")
                };
                (
                    PlanAction::Update { current: from },
                    format!("update {what}"),
                )
            }
        };
        let changed = action != PlanAction::Unchanged;
        let mut service_account_patch = Self::patch(changed);
        service_account_patch.changed_at = unchanged_since;
        chain.note_on(&mut service_account_patch);
        Ok(Plan::new(action, description, service_account_patch))
    }

    async fn bind_one(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
        roles: &RoleChecks<'_>,
    ) -> Result<BindOutcome> {
        if self.mode_of(binding) == AwsRoleMode::Irsa {
            return self.bind_irsa(run, binding, found).await;
        }
        let Checked {
            role,
            wanted,
            current,
            chain,
        } = self
            .current(
                run,
                binding,
                found,
                roles,
                op::CREATE_POD_IDENTITY_ASSOCIATION,
            )
            .await?;
        let mut outcome = match current {
            Current::None => self.create(run, binding, &role.arn).await?,
            Current::Same(a) => {
                let patch = Self::patch_of(false, Some(&a));
                BindOutcome::new(BindChange::Unchanged, a.association_arn, patch)
            }
            Current::Other(a) => self.update(run, a, &role.arn, &wanted).await?,
        };
        // A new association (or target) has an external ID EKS made just now: a target whose
        // trust requires another one was checked before it existed, so it is checked again.
        // Written already: a mismatch is a note here, and an error on the next bind and verify.
        if outcome.is_changed()
            && chain == ChainCheck::Checked
            && let Some(external_id) = self.external_id_of(&outcome.resource_id)
            && let Err(e) = self
                .check_chain(run, binding, &role, Some(&external_id), false)
                .await
        {
            outcome.service_account_patch.notes.push(e.to_string());
        }
        chain.note_on(&mut outcome.service_account_patch);
        Ok(outcome)
    }

    /// Deletes the association `found` for `binding`'s service account. `unbind` adopts an
    /// untagged association; removing a stale link (`marks_required`) needs its tags to prove it
    /// is the binding's own.
    pub(crate) async fn unbind_one(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
        marks_required: bool,
    ) -> Result<UnbindOutcome> {
        const OP: Operation = op::DELETE_POD_IDENTITY_ASSOCIATION;
        let Some(summary) = found else {
            return Ok(UnbindOutcome::AlreadyAbsent);
        };
        if let Some(owner) = &summary.owner_arn {
            return Err(self.addon_owned(binding, owner, OP));
        }
        let current = match self.describe(run, &summary.association_id).await {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(UnbindOutcome::AlreadyAbsent),
            Err(e) => return Err(e),
        };
        let owner = Owner::of(&current.tags);
        if marks_required && !owner.proves(&binding.workload) {
            return Err(ownership::conflict(binding, &owner, &self.cluster, OP));
        }
        ownership::check(binding, &current, &self.cluster, OP)?;
        self.delete(run, &current.association_id, &current.association_arn)
            .await
    }
}
