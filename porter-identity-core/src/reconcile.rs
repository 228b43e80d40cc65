//! `Reconciler`: one call per deploy. Binds an app's desired set on every cloud and removes the
//! links that the app no longer wants — only those provably its own.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::future::join_all;

use crate::kubernetes_step::KubernetesStep;
use crate::report::{
    KeptLink, LinkChange, ReconcileReport, RemovedLink, ServiceAccountNeeds, WorkloadResult,
};
use crate::{
    AppManifest, AppVerifyReport, Binding, Cloud, ClusterFacts, Error, KubernetesName, LinkKey,
    Namespace, Result, RunContext, RunMode, ServiceAccountPatch, StaleAction, StaleLink,
    StaleQuery, UnbindOutcome, VerifyReport, WorkloadIdentityProvider, WorkloadVerify,
    provider::link_conflicts,
};

/// Deploys the identity links of one app in one namespace: binds its desired set on every
/// cloud through [`bind_all`](WorkloadIdentityProvider::bind_all), and removes the links it no
/// longer wants.
///
/// **What is stale.** A link is stale when its [link key](Binding::link_key) is not desired
/// any more and it is provably the app's own:
/// - on every cloud, a binding of the *previous* deploy ([`previous`](Self::previous)) whose
///   key is no longer desired — a removed service, a removed connection, a workload moved to
///   another managed identity or GCP service account (on AWS a moved role is the same
///   association, updated in place);
/// - on AWS, even without a previous deploy, an association in the namespace tagged with this
///   app (`porter-identity/app`, `managed-by: porter-identity`) whose service account is no
///   longer desired.
///
/// It never removes what it cannot prove is the app's: not an association without
/// porter-identity's tags, not one an EKS add-on owns, not another app's or another service's.
/// Those are listed in the report's `kept`, with the reason.
///
/// **Safety.** Every input is checked before the first cloud call: the app and namespace
/// names, that each desired binding belongs to them, that no two desired bindings fight over
/// one link, and that every cloud in play has a provider (or is
/// [ignored](Self::ignore_cloud)). Bindings are written before stale links are removed, so a
/// moved workload is never without its link. The desired set is the *whole* app: a link of the
/// app that it does not name is removed.
///
/// Two reconciles of the same desired set may run at once (two deploy processes): they
/// converge, with nothing duplicated. Two reconciles of *different* desired sets of one app
/// race like any two deploys of it; let one deploy of an app run at a time.
///
/// ```
/// use porter_identity_core::{AppManifest, Reconciler, WorkloadIdentityProvider};
///
/// async fn deploy(aws: &dyn WorkloadIdentityProvider, now: &AppManifest, before: &AppManifest)
///     -> porter_identity_core::Result<()>
/// {
///     let report = Reconciler::new("shop", "production")
///         .provider(aws)
///         .desired(now)
///         .previous(before)
///         .run()
///         .await?;
///     println!("{report}");
///     if let Some((_, e)) = report.errors().next() {
///         return Err(e.clone());
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Reconciler<'a> {
    app: String,
    namespace: String,
    providers: BTreeMap<Cloud, &'a dyn WorkloadIdentityProvider>,
    ignored: BTreeSet<Cloud>,
    desired: Option<Vec<Source<'a>>>,
    previous: Vec<Source<'a>>,
    kubernetes: Option<&'a dyn KubernetesStep>,
    teardown: bool,
}

#[derive(Debug, Clone)]
enum Source<'a> {
    Manifest(&'a AppManifest),
    Bindings(Vec<Binding>),
}

/// The checked inputs of a reconcile.
struct Inputs {
    app: KubernetesName,
    namespace: Namespace,
    desired: Vec<Binding>,
    previous: Vec<Binding>,
}

/// What one cloud's provider did.
struct CloudOutcome {
    desired: Vec<(usize, Result<LinkChange>, ServiceAccountPatch)>,
    removed: Vec<RemovedLink>,
    kept: Vec<KeptLink>,
    cleanup_error: Option<Error>,
}

impl<'a> Reconciler<'a> {
    /// A reconciler of app `app` in `namespace` (both checked when it runs).
    pub fn new(app: &str, namespace: &str) -> Self {
        Reconciler {
            app: app.to_owned(),
            namespace: namespace.to_owned(),
            providers: BTreeMap::new(),
            ignored: BTreeSet::new(),
            desired: None,
            previous: Vec::new(),
            kubernetes: None,
            teardown: false,
        }
    }

    /// A reconciler that tears app `app` in `namespace` down: its desired set is empty, so
    /// every link of the app that is provably its own is removed — what the previous deploy
    /// names ([`previous`](Self::previous)) on every cloud, and on AWS what carries the app's
    /// tags. Links of other apps, of add-ons and made by hand stay, listed in the report's
    /// `kept`. With the Kubernetes step, the ServiceAccounts are left as they are.
    ///
    /// Giving it a desired set as well is an error: say one or the other.
    ///
    /// ```
    /// use porter_identity_core::{AppManifest, Reconciler, WorkloadIdentityProvider};
    ///
    /// async fn remove_app(aws: &dyn WorkloadIdentityProvider, last_deploy: &AppManifest)
    ///     -> porter_identity_core::Result<()>
    /// {
    ///     let report = Reconciler::teardown("shop", "production")
    ///         .provider(aws)
    ///         .previous(last_deploy)
    ///         .run()
    ///         .await?;
    ///     println!("{} links removed", report.counts().removed);
    ///     Ok(())
    /// }
    /// ```
    pub fn teardown(app: &str, namespace: &str) -> Self {
        Reconciler {
            teardown: true,
            ..Self::new(app, namespace)
        }
    }

    /// The cluster side, run after the clouds' in the same call (porter-identity-kube's
    /// `Cluster::step(options)`): the ServiceAccounts' annotations, the Azure pod label,
    /// restarts when asked, and the cluster's findings, into each service account of the
    /// report. In a dry run it writes nothing either.
    pub fn kubernetes(mut self, step: &'a dyn KubernetesStep) -> Self {
        self.kubernetes = Some(step);
        self
    }

    /// The provider of one cloud (its [`cloud`](WorkloadIdentityProvider::cloud)); a second
    /// provider of the same cloud replaces the first.
    pub fn provider(mut self, provider: &'a dyn WorkloadIdentityProvider) -> Self {
        self.providers.insert(provider.cloud(), provider);
        self
    }

    /// Leaves the links of `cloud` as they are: its bindings are neither bound nor removed.
    /// Without this, bindings of a cloud that has no provider are an error.
    pub fn ignore_cloud(mut self, cloud: Cloud) -> Self {
        self.ignored.insert(cloud);
        self
    }

    /// The desired set: every identity connection of the app's porter.yaml, each service
    /// running as [`ServiceAccountName::for_service`](crate::ServiceAccountName::for_service).
    pub fn desired(mut self, manifest: &'a AppManifest) -> Self {
        self.desired
            .get_or_insert_with(Vec::new)
            .push(Source::Manifest(manifest));
        self
    }

    /// The desired set as bindings (each of this app and namespace). An empty list is a
    /// desired set too: it removes every link of the app.
    pub fn desired_bindings(mut self, bindings: impl IntoIterator<Item = Binding>) -> Self {
        self.desired
            .get_or_insert_with(Vec::new)
            .push(Source::Bindings(bindings.into_iter().collect()));
        self
    }

    /// The previous deploy's porter.yaml: its links that are no longer desired are removed.
    pub fn previous(mut self, manifest: &'a AppManifest) -> Self {
        self.previous.push(Source::Manifest(manifest));
        self
    }

    /// The previous deploy's bindings (of any app and namespace: each is removed only if its
    /// link is provably its own).
    pub fn previous_bindings(mut self, bindings: impl IntoIterator<Item = Binding>) -> Self {
        self.previous
            .push(Source::Bindings(bindings.into_iter().collect()));
        self
    }

    /// Binds the desired set and removes stale links. Fails, before any cloud call, only on
    /// bad input; what fails in a cloud is in the report ([`ReconcileReport::is_ok`]).
    ///
    /// It takes the reconciler, so a run is built and awaited in one expression, and two of
    /// them can run side by side:
    ///
    /// ```
    /// use porter_identity_core::{AppManifest, Reconciler, WorkloadIdentityProvider};
    ///
    /// async fn deploy_two(aws: &dyn WorkloadIdentityProvider, shop: &AppManifest, blog: &AppManifest) {
    ///     let (shop, blog) = tokio::join!(
    ///         Reconciler::new("shop", "prod").provider(aws).desired(shop).run(),
    ///         Reconciler::new("blog", "prod").provider(aws).desired(blog).run(),
    ///     );
    ///     println!("{:?} {:?}", shop.map(|r| r.counts()), blog.map(|r| r.counts()));
    /// }
    /// ```
    pub async fn run(self) -> Result<ReconcileReport> {
        self.reconcile(RunMode::Apply).await
    }

    /// What [`run`](Self::run) would do, with no write: the plan of each binding and the stale
    /// links that would be removed or kept.
    pub async fn dry_run(self) -> Result<ReconcileReport> {
        self.reconcile(RunMode::Plan).await
    }

    async fn reconcile(&self, mode: RunMode) -> Result<ReconcileReport> {
        let dry_run = mode == RunMode::Plan;
        let inputs = self.inputs()?;
        let clouds = self.clouds();
        let run = RunContext::new(mode);
        let outcomes = join_all(
            clouds
                .iter()
                .map(|&cloud| self.reconcile_cloud(&run, cloud, &inputs)),
        )
        .await;
        let (facts, fact_errors) = self.cluster_facts(&run, &clouds, &inputs.desired).await;
        let mut report = assemble(inputs, dry_run, outcomes, run.calls());
        report.cluster_facts = facts;
        report.cleanup_errors.extend(fact_errors);
        if let Some(step) = self.kubernetes {
            crate::kubernetes_step::run_step(step, &mut report).await;
        }
        Ok(report)
    }

    /// Verifies the app, read only, in one call: every desired binding's link on its cloud
    /// ([`verify_all`](WorkloadIdentityProvider::verify_all), one batch per cloud) and, with
    /// the [Kubernetes step](Self::kubernetes), each service account in the cluster, from
    /// what the verifies found the links need. Nothing is planned or written, and no link is
    /// read twice.
    ///
    /// Fails, before any cloud call, only on bad input, as [`run`](Self::run) does. A
    /// teardown has nothing to verify.
    ///
    /// ```
    /// use porter_identity_core::{AppManifest, Reconciler, WorkloadIdentityProvider};
    ///
    /// async fn check(aws: &dyn WorkloadIdentityProvider, app: &AppManifest) -> porter_identity_core::Result<bool> {
    ///     let report = Reconciler::new("shop", "prod").provider(aws).desired(app).verify().await?;
    ///     println!("{report}");
    ///     Ok(report.is_healthy())
    /// }
    /// ```
    pub async fn verify(self) -> Result<AppVerifyReport> {
        if self.teardown {
            return Err(Error::invalid_input(
                "teardown",
                "is set, but a torn-down app has no links to verify",
                "verify with Reconciler::new(app, namespace).desired(..).verify()",
            ));
        }
        let inputs = self.inputs()?;
        let clouds = self.clouds();
        let run = RunContext::plan();
        let providers = &self.providers;
        let verified = join_all(clouds.iter().map(|&cloud| {
            let (indexes, desired) = of_cloud(&inputs.desired, cloud);
            let run = &run;
            async move {
                let Some(provider) = providers.get(&cloud) else {
                    unreachable!("clouds() only names clouds with a provider")
                };
                let reports = provider.verify_all(run, &desired).await;
                indexes.into_iter().zip(reports).collect::<Vec<_>>()
            }
        }))
        .await;
        let (cluster_facts, cluster_fact_errors) =
            self.cluster_facts(&run, &clouds, &inputs.desired).await;
        let mut results: Vec<Option<Result<VerifyReport>>> =
            inputs.desired.iter().map(|_| None).collect();
        for (i, r) in verified.into_iter().flatten() {
            results[i] = Some(r);
        }
        let mut service_accounts = Vec::new();
        let mut workloads = Vec::new();
        for (binding, result) in inputs.desired.into_iter().zip(results) {
            // Every desired binding's cloud has a provider or is ignored (checked up front).
            let Some(result) = result else { continue };
            if let Ok(report) = &result {
                needs_of(
                    &mut service_accounts,
                    &binding,
                    report.service_account_patch.clone(),
                );
            }
            workloads.push(WorkloadVerify { binding, result });
        }
        let mut report = AppVerifyReport {
            app: inputs.app,
            namespace: inputs.namespace,
            workloads,
            service_accounts,
            cluster_facts,
            cluster_fact_errors,
            calls: run.calls(),
        };
        if let Some(step) = self.kubernetes {
            crate::kubernetes_step::diagnose_step(step, &mut report).await;
        }
        Ok(report)
    }

    /// The clouds a run works on: those with a provider, less the ignored.
    fn clouds(&self) -> Vec<Cloud> {
        self.providers
            .keys()
            .copied()
            .filter(|c| !self.ignored.contains(c))
            .collect()
    }

    /// What the providers of the clouds in play know of the cluster, when the Kubernetes step
    /// will need it (GKE's node pools, for its findings), asked in the same run; and the
    /// errors of those that could not say.
    async fn cluster_facts(
        &self,
        run: &RunContext,
        clouds: &[Cloud],
        desired: &[Binding],
    ) -> (ClusterFacts, Vec<Error>) {
        let mut facts = ClusterFacts::default();
        let mut errors = Vec::new();
        if self.kubernetes.is_none() {
            return (facts, errors);
        }
        let in_play: Vec<&dyn WorkloadIdentityProvider> = clouds
            .iter()
            .filter(|c| desired.iter().any(|b| b.connection.cloud() == Some(**c)))
            .filter_map(|c| self.providers.get(c).copied())
            .collect();
        for read in join_all(in_play.iter().map(|p| p.cluster_facts(run))).await {
            match read {
                Ok(known) => facts.merge(known),
                Err(e) => errors.push(e),
            }
        }
        (facts, errors)
    }

    /// Reads and checks every input, before any cloud call.
    fn inputs(&self) -> Result<Inputs> {
        let app = KubernetesName::parse("app", &self.app)?;
        let namespace = Namespace::parse(&self.namespace)?;
        let no_sources = Vec::new();
        let desired_sources = match (&self.desired, self.teardown) {
            (Some(_), true) => {
                return Err(Error::invalid_input(
                    "desired",
                    "is set, but this reconciler tears the app down (its desired set is empty)",
                    "use Reconciler::new(app, namespace).desired(..) to deploy, or Reconciler::teardown(app, namespace) without .desired to remove every link of the app",
                ));
            }
            (None, true) => &no_sources,
            (Some(sources), false) => sources,
            (None, false) => {
                return Err(Error::invalid_input(
                    "desired",
                    "is not set: a reconcile needs the app's whole desired set",
                    "call .desired(&manifest) or .desired_bindings(bindings); to remove every link of the app, use Reconciler::teardown(app, namespace)",
                ));
            }
        };
        let mut desired = Vec::new();
        for source in desired_sources {
            match source {
                Source::Manifest(m) => {
                    desired.extend(m.bindings(app.as_str(), namespace.as_str())?)
                }
                Source::Bindings(list) => desired.extend(list.iter().cloned()),
            }
        }
        desired.retain(|b| b.connection.is_identity());
        for (i, b) in desired.iter().enumerate() {
            if *b.workload.app() != app || *b.workload.namespace() != namespace {
                return Err(Error::invalid_input(
                    format!("desired[{i}]"),
                    format!(
                        "is workload {} of app {}, but this reconciler deploys app {app} in namespace {namespace}",
                        b.workload,
                        b.workload.app()
                    ),
                    "reconcile each app and namespace with its own Reconciler, or correct the binding",
                ));
            }
        }
        if let Some(e) = link_conflicts(&desired).into_iter().flatten().next() {
            return Err(e);
        }
        let mut previous = Vec::new();
        for source in &self.previous {
            match source {
                Source::Manifest(m) => {
                    previous.extend(m.bindings(app.as_str(), namespace.as_str())?);
                }
                Source::Bindings(list) => previous.extend(list.iter().cloned()),
            }
        }
        previous.retain(|b| b.connection.is_identity());
        self.check_providers(&desired, &previous)?;
        Ok(Inputs {
            app,
            namespace,
            desired,
            previous,
        })
    }

    fn check_providers(&self, desired: &[Binding], previous: &[Binding]) -> Result<()> {
        let mut missing: BTreeMap<Cloud, BTreeSet<String>> = BTreeMap::new();
        for b in desired.iter().chain(previous) {
            if let Some(cloud) = b.connection.cloud()
                && !self.providers.contains_key(&cloud)
                && !self.ignored.contains(&cloud)
            {
                missing
                    .entry(cloud)
                    .or_default()
                    .insert(b.workload.service().to_string());
            }
        }
        match missing.into_iter().next() {
            None => Ok(()),
            Some((cloud, services)) => Err(Error::invalid_input(
                "providers",
                format!(
                    "has no {cloud} provider, but service{} {} ha{} `{}` connections",
                    if services.len() == 1 { "" } else { "s" },
                    services
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if services.len() == 1 { "s" } else { "ve" },
                    cloud.connection_type()
                ),
                format!(
                    "add the {cloud} provider with .provider(&provider), or call .ignore_cloud(Cloud::{cloud:?}) to leave {cloud} links as they are"
                ),
            )),
        }
    }

    async fn reconcile_cloud(
        &self,
        run: &RunContext,
        cloud: Cloud,
        inputs: &Inputs,
    ) -> CloudOutcome {
        let dry_run = run.is_plan();
        let Some(provider) = self.providers.get(&cloud) else {
            unreachable!("reconcile_cloud is only called for clouds with a provider")
        };
        let (indexes, desired) = of_cloud(&inputs.desired, cloud);
        let desired_keys: HashSet<LinkKey> = desired.iter().filter_map(Binding::link_key).collect();
        let mut seen = HashSet::new();
        let previous: Vec<Binding> = inputs
            .previous
            .iter()
            .filter(|b| b.connection.cloud() == Some(cloud))
            .filter(|b| {
                b.link_key()
                    .is_some_and(|k| !desired_keys.contains(&k) && seen.insert(k))
            })
            .cloned()
            .collect();
        let query = StaleQuery {
            app: &inputs.app,
            namespace: &inputs.namespace,
            desired: &desired,
            previous: &previous,
        };
        // Bind first, then look for stale links: a moved workload is never without its link,
        // and the search reuses what the binds read (shared in the run) instead of reading again.
        let results: Vec<(Result<LinkChange>, ServiceAccountPatch)> = if dry_run {
            let plans = provider.plan_all(run, &desired).await;
            plans
                .into_iter()
                .map(|r| with_patch(r, |p| p.service_account_patch.clone()))
                .collect()
        } else {
            let outcomes = provider.bind_all(run, &desired).await;
            outcomes
                .into_iter()
                .map(|r| {
                    with_patch(r, |o| {
                        let mut patch = o.service_account_patch.clone();
                        // Pods started before a written link lack it: when it was written is
                        // what porter-identity-kube compares their start with.
                        if o.is_changed() && patch.changed_at.is_none() {
                            patch.changed_at = Some(std::time::SystemTime::now());
                        }
                        patch
                    })
                })
                .collect()
        };
        let stale = provider.stale_links(run, &query).await;
        let desired_results = indexes
            .into_iter()
            .zip(results)
            .map(|(i, (r, patch))| (i, r, patch))
            .collect();
        let (stale, cleanup_error) = match stale {
            Ok(links) => (links, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut to_remove: Vec<StaleLink> = Vec::new();
        let mut kept = Vec::new();
        for link in stale {
            // A provider must never offer a desired link as stale; if one did, keep it.
            if link
                .binding
                .link_key()
                .is_none_or(|k| desired_keys.contains(&k))
            {
                tracing::warn!(binding = %link.binding, "a provider offered a desired link as stale; kept");
                continue;
            }
            match link.action {
                StaleAction::Remove => to_remove.push(link),
                StaleAction::Keep { reason } => kept.push(KeptLink {
                    binding: link.binding,
                    resource_id: link.resource_id,
                    reason,
                }),
            }
        }
        let removed = if dry_run {
            to_remove
                .into_iter()
                .map(|l| RemovedLink {
                    binding: l.binding,
                    resource_id: l.resource_id,
                    evidence: l.evidence,
                    error: None,
                })
                .collect()
        } else {
            let outcomes = provider.remove_stale_links(run, &to_remove).await;
            to_remove
                .into_iter()
                .zip(outcomes)
                .filter_map(|(l, outcome)| match outcome {
                    Ok(UnbindOutcome::Deleted { resource_id }) => Some(RemovedLink {
                        binding: l.binding,
                        resource_id: Some(resource_id),
                        evidence: l.evidence,
                        error: None,
                    }),
                    // Gone already (another deploy removed it, or it never existed).
                    Ok(UnbindOutcome::AlreadyAbsent) => None,
                    Err(e) => Some(RemovedLink {
                        binding: l.binding,
                        resource_id: l.resource_id,
                        evidence: l.evidence,
                        error: Some(e),
                    }),
                })
                .collect()
        };
        CloudOutcome {
            desired: desired_results,
            removed,
            kept,
            cleanup_error,
        }
    }
}

/// The bindings of `cloud` in `bindings`, with their indexes there.
fn of_cloud(bindings: &[Binding], cloud: Cloud) -> (Vec<usize>, Vec<Binding>) {
    bindings
        .iter()
        .enumerate()
        .filter(|(_, b)| b.connection.cloud() == Some(cloud))
        .map(|(i, b)| (i, b.clone()))
        .unzip()
}

/// Adds what `binding`'s link needs to its service account's needs in `service_accounts`.
fn needs_of(
    service_accounts: &mut Vec<ServiceAccountNeeds>,
    binding: &Binding,
    patch: ServiceAccountPatch,
) {
    let sa = binding.workload.service_account();
    let needs = match service_accounts
        .iter()
        .position(|n| n.workload.service_account() == sa)
    {
        Some(i) => &mut service_accounts[i],
        None => {
            service_accounts.push(ServiceAccountNeeds {
                workload: binding.workload.clone(),
                patch: ServiceAccountPatch::default(),
                clouds: BTreeSet::new(),
                cluster: None,
            });
            let last = service_accounts.len() - 1;
            &mut service_accounts[last]
        }
    };
    needs.patch.merge(patch);
    needs.clouds.extend(binding.connection.cloud());
}

/// A binding's change, and what its service account needs (nothing known when it failed).
fn with_patch<T>(
    result: Result<T>,
    patch: impl Fn(&T) -> ServiceAccountPatch,
) -> (Result<LinkChange>, ServiceAccountPatch)
where
    LinkChange: From<T>,
{
    match result {
        Ok(done) => {
            let needs = patch(&done);
            (Ok(LinkChange::from(done)), needs)
        }
        Err(e) => (Err(e), ServiceAccountPatch::default()),
    }
}

fn assemble(
    inputs: Inputs,
    dry_run: bool,
    outcomes: Vec<CloudOutcome>,
    calls: crate::CallCounts,
) -> ReconcileReport {
    let Inputs {
        app,
        namespace,
        desired,
        ..
    } = inputs;
    let mut results: Vec<Option<(Result<LinkChange>, ServiceAccountPatch)>> =
        desired.iter().map(|_| None).collect();
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut cleanup_errors = Vec::new();
    for outcome in outcomes {
        for (i, r, patch) in outcome.desired {
            results[i] = Some((r, patch));
        }
        removed.extend(outcome.removed);
        kept.extend(outcome.kept);
        cleanup_errors.extend(outcome.cleanup_error);
    }
    let mut service_accounts: Vec<ServiceAccountNeeds> = Vec::new();
    let mut workloads = Vec::new();
    for (binding, result) in desired.into_iter().zip(results) {
        // Every desired binding's cloud has a provider or is ignored (checked up front).
        let Some((result, patch)) = result else {
            continue;
        };
        // What a failed binding needs is not known: only the links made (or planned) count.
        if result.is_ok() {
            needs_of(&mut service_accounts, &binding, patch);
        }
        workloads.push(WorkloadResult { binding, result });
    }
    ReconcileReport {
        app,
        namespace,
        dry_run,
        workloads,
        removed,
        kept,
        cleanup_errors,
        cluster_facts: ClusterFacts::default(),
        service_accounts,
        calls,
    }
}
