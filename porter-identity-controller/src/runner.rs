//! The controller: kube-runtime's `Controller` over every `AppIdentity`, behind a Lease.
//!
//! - Each object is reconciled ([`reconcile::reconcile`]) when it changes, when an
//!   `IdentityPolicy` changes, every resync period (with jitter) and, after a cloud error, with
//!   backoff.
//! - kube-runtime's finalizer helper puts [`FINALIZER`] on each object; a deleted object's links
//!   are removed ([`reconcile::teardown`]) before the finalizer goes, unless it carries
//!   [`ORPHAN_ANNOTATION`]. A failing cloud keeps the finalizer and says why in `Ready`.
//! - The status is written only when it changed, and every change and error is an Event: a
//!   resync of an unchanged app writes nothing, on the clouds or in the cluster.
//! - Every reconcile takes a token of each cloud it touches and is charged its calls after
//!   ([`RateLimits`]).
//! - Only the replica holding the Lease reconciles ([`crate::lease`]); one that loses it stops
//!   at once, before another may take over.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use porter_identity::kube::Cluster;
use porter_identity::kube::step::{ReconcileStep, StepOptions};
use porter_identity_core::{Cloud, WorkloadIdentityProvider};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::lease::{LeaseLock, LeaseTiming};
use crate::limits::{CloudRateLimit, RateLimits};
use crate::metrics::{Metrics, ReconcileResult};
use crate::reconcile::{self, Clouds, Outcome};
use crate::{AppIdentity, AppIdentityStatus, IdentityPolicy};

/// The finalizer the controller puts on every `AppIdentity`: its links go before it does.
pub const FINALIZER: &str = "identity.porter.run/links";

/// Set to `"true"` on an `AppIdentity` to keep its links when it is deleted (the finalizer
/// goes without removing them): to move an app to another object or tool.
pub const ORPHAN_ANNOTATION: &str = "identity.porter.run/orphan-links";

/// The controller's name in Events and as its field manager.
pub const CONTROLLER_NAME: &str = "porter-identity-controller";

/// What the controller does, and how often.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often every object is reconciled again (default 10 min), with ±10% jitter.
    pub resync: Duration,
    /// Reconciles at once (default 8).
    pub concurrency: u16,
    /// Per-cloud rate limits in place of the defaults.
    pub rate_limits: Vec<CloudRateLimit>,
    /// The namespace of the Lease (the controller's own).
    pub lease_namespace: String,
    /// The Lease's name (default `porter-identity-controller`).
    pub lease_name: String,
    /// This replica's identity in the Lease and in Events (its pod name).
    pub identity: String,
    /// The election's timing.
    pub lease: LeaseTiming,
    /// The first retry after a cloud error (default 5 s), doubled per failure up to `resync`.
    pub error_backoff: Duration,
    /// How often an object's links are verified on the clouds (trust, permissions, least
    /// privilege), beside every change of its spec (default 1 h). Verify reads more than an
    /// unchanged reconcile, so it runs at most this often rather than at every resync.
    pub verify_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(600),
            concurrency: 8,
            rate_limits: Vec::new(),
            lease_namespace: "porter-identity-system".into(),
            lease_name: CONTROLLER_NAME.into(),
            identity: format!("{CONTROLLER_NAME}-{}", std::process::id()),
            lease: LeaseTiming::default(),
            error_backoff: Duration::from_secs(5),
            verify_every: Duration::from_secs(3600),
        }
    }
}

/// An error of one reconcile: retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a read or write.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A deleted object's links could not all be removed: it keeps its finalizer.
    #[error("{0}")]
    Teardown(String),
    /// kube-runtime's finalizer helper failed (its patch of `metadata.finalizers`).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// kube-runtime's finalizer patch carries a `test` of the finalizers it read: 422 (or 409)
    /// when the object changed since.
    fn is_stale_finalizer_write(&self) -> bool {
        let Error::Finalizer(e) = self else {
            return false;
        };
        matches!(
            &**e,
            finalizer::Error::AddFinalizer(kube::Error::Api(s))
                | finalizer::Error::RemoveFinalizer(kube::Error::Api(s))
                if s.code == 422 || s.code == 409
        )
    }

    fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Teardown(_) => "teardown",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// Builds the providers afresh (each from its cloud's environment): see
/// [`IdentityController::providers_from`].
pub type ProviderFactory = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<
            'static,
            Result<Vec<Arc<dyn WorkloadIdentityProvider>>, String>,
        > + Send
        + Sync,
>;

/// The controller, ready to [`run`](Self::run).
///
/// ```no_run
/// use std::sync::Arc;
/// use porter_identity::aws::AwsPodIdentityProvider;
/// use porter_identity::kube::Cluster;
/// use porter_identity_controller::runner::{IdentityController, Settings};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = Cluster::builder().from_env().await?;
/// let aws = AwsPodIdentityProvider::builder().cluster("prod").from_env().await?;
/// IdentityController::new(cluster, Settings::default())
///     .provider(Arc::new(aws))
///     .run(async { let _ = tokio::signal::ctrl_c().await; })
///     .await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdentityController {
    cluster: Cluster,
    providers: Vec<Arc<dyn WorkloadIdentityProvider>>,
    factory: Option<ProviderFactory>,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for IdentityController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityController")
            .field("providers", &self.providers)
            .field("factory", &self.factory.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl IdentityController {
    /// A controller on `cluster` (its client is the API server it watches and writes).
    pub fn new(cluster: Cluster, settings: Settings) -> Self {
        IdentityController {
            cluster,
            providers: Vec::new(),
            factory: None,
            settings,
            metrics: Metrics::new(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Adds the provider of one cloud.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn WorkloadIdentityProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// Builds the providers with `factory`, and again every resync period. A provider keeps
    /// the reads that passed its checks (a role's trust, say) for its lifetime, as one deploy
    /// should; a controller that runs for months must see a trust broken since, so it starts
    /// each period with fresh providers. A factory that fails keeps the providers it had (and
    /// says why in the log) until the next period. Providers given with
    /// [`provider`](Self::provider) are kept as they are.
    #[must_use]
    pub fn providers_from(mut self, factory: ProviderFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// The metrics (`/metrics`).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Set once the replica has reached the API server (`/readyz`): a replica standing by for
    /// the lease is ready too.
    pub fn readiness(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Runs until `shutdown` completes: stands for the Lease, reconciles while it holds it,
    /// stands again when it loses it. On shutdown the reconciles running finish, then the
    /// Lease is released so another replica takes over at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let client = self.cluster.client().clone();
        let api: Api<Lease> = Api::namespaced(client, &self.settings.lease_namespace);
        let mut lock = LeaseLock::new(
            api,
            &self.settings.lease_name,
            &self.settings.identity,
            self.settings.lease,
        );
        let retry = self.settings.lease.retry_period;
        loop {
            // A candidate: tries every retry period until it holds the lease.
            loop {
                if *stop_rx.borrow() {
                    return;
                }
                match lock.try_acquire_or_renew().await {
                    Ok(true) => {
                        self.ready.store(true, Ordering::Relaxed);
                        break;
                    }
                    Ok(false) => self.ready.store(true, Ordering::Relaxed),
                    Err(error) => {
                        tracing::warn!(%error, lease = %self.settings.lease_name, "cannot read or write the lease")
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = stopped(stop_rx.clone()) => return,
                }
            }
            tracing::info!(identity = %lock.holder(), "leading: reconciling AppIdentity objects");
            self.metrics.set_leader(true);
            let lost = self.lead(&mut lock, stop_rx.clone()).await;
            self.metrics.set_leader(false);
            if lost {
                tracing::warn!(identity = %lock.holder(), "lost the lease: stopped reconciling");
                continue;
            }
            if let Err(error) = lock.release().await {
                tracing::warn!(%error, "could not release the lease; it expires on its own");
            }
            tracing::info!("stopped");
            return;
        }
    }

    /// Reconciles while the lease holds. `true` when it was lost (the reconciles were dropped
    /// where they stood), `false` when `stop` ended them gracefully.
    async fn lead(&self, lock: &mut LeaseLock, stop: watch::Receiver<bool>) -> bool {
        let timing = lock.timing();
        let controller = self.controller(stopped(stop));
        tokio::pin!(controller);
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = &mut controller => return false,
                () = tokio::time::sleep(timing.retry_period) => {}
            }
            // A renewal that hangs must not outlive the deadline: the leader stops before
            // another replica may take the lease (its duration is longer than the deadline).
            let left = timing.renew_deadline.saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, lock.try_acquire_or_renew()).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => return true,
                Ok(Err(error)) => tracing::warn!(%error, "cannot renew the lease"),
                Err(_) => {}
            }
            if renewed.elapsed() >= timing.renew_deadline {
                return true;
            }
        }
    }

    /// The controller's stream, run to its end (`shutdown`).
    async fn controller(&self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let client = self.cluster.client().clone();
        let (policies, writer) = reflector::store();
        let due: Arc<Mutex<HashMap<String, (u64, Instant)>>> = Arc::default();
        let forget_all = due.clone();
        let policy_changes = reflector::reflector(
            writer,
            watcher(
                Api::<IdentityPolicy>::all(client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .touched_objects()
        .filter_map(move |r| {
            // A policy changed: every object is due now, whatever it was.
            if r.is_ok() {
                forget_all
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            }
            async move { r.ok().map(|_| ()) }
        });
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance: Some(self.settings.identity.clone()),
            },
        );
        let context = Arc::new(Context {
            client: client.clone(),
            cluster: self.cluster.clone(),
            providers: self.providers.clone(),
            factory: self.factory.clone(),
            built: tokio::sync::RwLock::new(None),
            policies,
            recorder,
            limits: RateLimits::new(&self.settings.rate_limits),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            failures: Mutex::new(HashMap::new()),
            due,
        });
        Controller::new(Api::<AppIdentity>::all(client), watcher::Config::default())
            .with_config(ControllerConfig::default().concurrency(self.settings.concurrency))
            .reconcile_all_on(policy_changes)
            .graceful_shutdown_on(shutdown)
            .run(reconcile_object, error_policy, context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "reconcile");
                }
            })
            .await;
    }
}

/// Completes when `stop` says so.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can stop us any more, so never complete.
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The providers, the cluster's step and the policies of one reconcile, and the clouds whose
/// token it took.
struct Prepared {
    taken: Vec<Cloud>,
    verify: bool,
    providers: Vec<Arc<dyn WorkloadIdentityProvider>>,
    step: ReconcileStep,
    policies: Vec<crate::IdentityPolicySpec>,
}

impl Prepared {
    fn providers(&self) -> Vec<&dyn WorkloadIdentityProvider> {
        self.providers.iter().map(|p| &**p as _).collect()
    }

    fn clouds<'a>(&'a self, providers: &'a [&'a dyn WorkloadIdentityProvider]) -> Clouds<'a> {
        Clouds {
            providers,
            kubernetes: Some(&self.step),
            policies: &self.policies,
            verify: self.verify,
        }
    }
}

/// Providers a factory built, and when.
type Built = (Instant, Vec<Arc<dyn WorkloadIdentityProvider>>);

/// What every reconcile shares.
struct Context {
    client: Client,
    cluster: Cluster,
    providers: Vec<Arc<dyn WorkloadIdentityProvider>>,
    factory: Option<ProviderFactory>,
    /// The factory's providers, and when they were built.
    built: tokio::sync::RwLock<Option<Built>>,
    policies: Store<IdentityPolicy>,
    recorder: Recorder,
    limits: RateLimits,
    metrics: Metrics,
    settings: Settings,
    /// Failed reconciles in a row, per object (`namespace/name`): the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Per object, what its last reconcile saw ([`trigger_hash`]) and when the next is due.
    /// kube-runtime reconciles on every change of an object, its status included: the
    /// controller's own status write would otherwise cost a second, empty reconcile of each.
    due: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
}

impl Context {
    fn jittered(&self, period: Duration) -> Duration {
        // ±10%: a fleet's objects, created together, do not resync together.
        period.mul_f64(0.9 + fastrand::f64() * 0.2)
    }

    /// Records one more failure of `key` and says when to retry.
    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = self
            .settings
            .error_backoff
            .saturating_mul(1 << (*n - 1).min(16))
            .min(self.settings.resync);
        self.jittered(delay)
    }

    /// Whether `object`'s reconcile can wait: nothing it reconciles on changed since the last
    /// one, whose next is not due yet. The time left, if so.
    fn not_due(&self, object: &AppIdentity) -> Option<Duration> {
        let due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        let (hash, at) = due.get(&key_of(object))?;
        let left = at.checked_duration_since(Instant::now())?;
        (*hash == trigger_hash(object)).then_some(left)
    }

    /// Remembers that `object` was reconciled and is due again in `after`.
    fn reconciled(&self, object: &AppIdentity, after: Duration) -> Action {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key_of(object),
                (trigger_hash(object), Instant::now() + after),
            );
        Action::requeue(after)
    }

    fn forget(&self, object: &AppIdentity) {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key_of(object));
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// What a reconcile of `object` runs on, once the policies are read and it has its
    /// rate-limit tokens. `None` when the policies can no longer be read (the controller is
    /// stopping).
    async fn prepare(&self, object: &AppIdentity) -> Option<Prepared> {
        // A new leader's first reconciles may start before its watch of the policies has
        // listed them: an empty policy set would deny every link, with a status and an Event
        // for each, until the list arrives.
        self.policies.wait_until_ready().await.ok()?;
        let taken = self.take_tokens(object).await;
        Some(Prepared {
            taken,
            verify: self.verify_due(object),
            providers: self.current_providers().await,
            step: self.step(object),
            policies: self.policies(),
        })
    }

    /// Whether `object`'s links are to be verified now: never verified, its spec changed since,
    /// or the last verify is a verify period old.
    fn verify_due(&self, object: &AppIdentity) -> bool {
        let Some(status) = &object.status else {
            return true;
        };
        if status.observed_generation != object.metadata.generation {
            return true;
        }
        let Some(last) = status
            .last_verify_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            return true;
        };
        let age = Timestamp::now().duration_since(last);
        k8s_openapi::jiff::SignedDuration::try_from(self.settings.verify_every)
            .map_or(true, |every| age >= every)
    }

    /// Waits for a token of every cloud `object` touches; the clouds, to charge after.
    async fn take_tokens(&self, object: &AppIdentity) -> Vec<Cloud> {
        let clouds = clouds_of(object);
        for cloud in &clouds {
            self.limits.acquire(*cloud).await;
        }
        clouds
    }

    fn charge(&self, outcome: &Outcome, taken: &[Cloud]) {
        self.limits.charge(&outcome.calls, taken);
        self.metrics.calls(&outcome.calls);
    }

    /// The fixed providers and the factory's, built afresh once a resync period.
    async fn current_providers(&self) -> Vec<Arc<dyn WorkloadIdentityProvider>> {
        let mut all = self.providers.clone();
        let Some(factory) = &self.factory else {
            return all;
        };
        let fresh = |b: &Option<Built>| {
            b.as_ref()
                .is_some_and(|(at, _)| at.elapsed() < self.settings.resync)
        };
        {
            let built = self.built.read().await;
            if fresh(&built) {
                all.extend(built.iter().flat_map(|(_, p)| p.iter().cloned()));
                return all;
            }
        }
        let mut built = self.built.write().await;
        // Another reconcile may have built them while this one waited for the lock.
        if !fresh(&built) {
            match factory().await {
                Ok(providers) => *built = Some((Instant::now(), providers)),
                Err(error) => {
                    tracing::warn!(%error, "could not build the providers again; the ones before stay");
                    self.metrics.error("providers");
                    if let Some((at, _)) = built.as_mut() {
                        *at = Instant::now();
                    }
                }
            }
        }
        all.extend(built.iter().flat_map(|(_, p)| p.iter().cloned()));
        all
    }

    fn policies(&self) -> Vec<crate::IdentityPolicySpec> {
        self.policies
            .state()
            .iter()
            .map(|p| p.spec.clone())
            .collect()
    }

    fn step(&self, object: &AppIdentity) -> ReconcileStep {
        let o = object.spec.options;
        self.cluster.step(
            StepOptions::default()
                .restart(o.restart)
                .create_service_accounts(o.create_service_accounts)
                .force_conflicts(o.force_conflicts),
        )
    }

    /// Writes `status` when it differs from the object's, the time of the last reconcile
    /// aside: an unchanged resync writes nothing.
    async fn write_status(
        &self,
        api: &Api<AppIdentity>,
        object: &AppIdentity,
        status: &AppIdentityStatus,
    ) -> Result<(), Error> {
        if let Some(before) = &object.status {
            let mut same = status.clone();
            same.last_reconcile_time
                .clone_from(&before.last_reconcile_time);
            if &same == before {
                return Ok(());
            }
        }
        let patch = serde_json::json!({ "status": status });
        api.patch_status(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    async fn publish(&self, object: &AppIdentity, events: &[reconcile::Event]) {
        let reference = object.object_ref(&());
        let namespace = object.namespace();
        // One after another per (reason, ServiceAccount): kube's Recorder makes a repeat of
        // one a series of the event before, which a race would make two. The groups at once:
        // an app's first reconcile records one event per link.
        let mut groups: Vec<Vec<&reconcile::Event>> = Vec::new();
        for e in events {
            match groups
                .iter_mut()
                .find(|g| g[0].reason == e.reason && g[0].service_account == e.service_account)
            {
                Some(g) => g.push(e),
                None => groups.push(vec![e]),
            }
        }
        let (reference, namespace) = (&reference, &namespace);
        futures_util::future::join_all(groups.iter().map(|g| async move {
            for e in g {
                let related = e.service_account.as_ref().map(|sa| ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("ServiceAccount".into()),
                    namespace: namespace.clone(),
                    name: Some(sa.clone()),
                    ..ObjectReference::default()
                });
                self.publish_one(reference, related, e).await;
            }
        }))
        .await;
    }

    async fn publish_one(
        &self,
        reference: &ObjectReference,
        related: Option<ObjectReference>,
        e: &reconcile::Event,
    ) {
        {
            let event = KubeEvent {
                type_: if e.type_ == "Warning" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.to_owned(),
                // The API server takes a note of at most 1 kB.
                note: Some(truncate(&e.note, 1000)),
                action: "Reconcile".into(),
                secondary: related,
            };
            if let Err(error) = self.recorder.publish(&event, reference).await {
                tracing::warn!(%error, reason = e.reason, "could not record an event");
                self.metrics.error("kube");
            }
        }
    }

    async fn apply(
        &self,
        api: &Api<AppIdentity>,
        object: Arc<AppIdentity>,
    ) -> Result<Action, Error> {
        let key = key_of(&object);
        let Some(run) = self.prepare(&object).await else {
            return Ok(Action::requeue(Duration::from_secs(1)));
        };
        let providers = run.providers();
        let outcome = reconcile::reconcile(&object, run.clouds(&providers), &now()).await;
        let taken = run.taken;
        self.charge(&outcome, &taken);
        self.write_status(api, &object, &outcome.status).await?;
        self.publish(&object, &outcome.events).await;
        for kind in error_kinds(&outcome) {
            self.metrics.error(kind);
        }
        let retry_soon = matches!(
            outcome.ready_reason(),
            "CloudError" | "ReconcileFailed" | "ClusterNotReady"
        );
        if outcome.is_ready() {
            self.metrics.reconciled(ReconcileResult::Ready);
        } else {
            self.metrics.reconciled(ReconcileResult::NotReady);
        }
        if retry_soon {
            let after = self.backoff(&key);
            Ok(self.reconciled(&object, after))
        } else {
            // Ready, or waiting for a change of the spec or of a policy (each is watched).
            self.succeeded(&key);
            let after = self.jittered(self.settings.resync);
            Ok(self.reconciled(&object, after))
        }
    }

    async fn cleanup(
        &self,
        api: &Api<AppIdentity>,
        object: Arc<AppIdentity>,
    ) -> Result<Action, Error> {
        let orphan = object
            .annotations()
            .get(ORPHAN_ANNOTATION)
            .is_some_and(|v| v == "true");
        if orphan {
            let note = format!(
                "{ORPHAN_ANNOTATION}=true: the links of app {} are kept",
                object.spec.app
            );
            self.publish(&object, &[orphan_event(note)]).await;
            self.metrics.reconciled(ReconcileResult::Deleted);
            return Ok(Action::await_change());
        }
        let Some(run) = self.prepare(&object).await else {
            return Ok(Action::requeue(Duration::from_secs(1)));
        };
        let providers = run.providers();
        let result = reconcile::teardown(&object, run.clouds(&providers), &now()).await;
        let taken = &run.taken;
        match result {
            Ok(outcome) => {
                self.charge(&outcome, taken);
                self.publish(&object, &outcome.events).await;
                self.succeeded(&key_of(&object));
                self.metrics.reconciled(ReconcileResult::Deleted);
                Ok(Action::await_change())
            }
            Err(outcome) => {
                self.charge(&outcome, taken);
                self.write_status(api, &object, &outcome.status).await?;
                self.publish(&object, &outcome.events).await;
                let message = outcome
                    .status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.message.clone())
                    .unwrap_or_default();
                Err(Error::Teardown(message))
            }
        }
    }
}

fn orphan_event(note: String) -> reconcile::Event {
    reconcile::Event {
        type_: "Normal",
        reason: "LinksOrphaned",
        note,
        service_account: None,
    }
}

async fn reconcile_object(object: Arc<AppIdentity>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(left) = ctx.not_due(&object) {
        return Ok(Action::requeue(left));
    }
    ctx.forget(&object);
    let started = Instant::now();
    let _queued = ctx.metrics.queued();
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<AppIdentity> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer::finalizer(&api, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(o) => ctx.apply(&api, o).await,
            FinalizerEvent::Cleanup(o) => ctx.cleanup(&api, o).await,
        }
    })
    .await;
    ctx.metrics
        .observe_duration(started.elapsed().as_secs_f64());
    result.map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    })
}

fn error_policy(object: Arc<AppIdentity>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&object);
    if error.is_stale_finalizer_write() {
        // The finalizer patch tests what the cache said; a watch event not yet seen makes it
        // fail. Not a failure of the object: try again once the cache has caught up.
        tracing::debug!(object = %key, %error, "finalizer written from a stale read; again");
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(object = %key, %error, "reconcile failed; retried with backoff");
    ctx.metrics.error(error.kind());
    ctx.metrics.reconciled(ReconcileResult::Error);
    Action::requeue(ctx.backoff(&key))
}

/// The porter-identity error kinds of an outcome's failures, by the reasons it gives.
fn error_kinds(outcome: &Outcome) -> Vec<&'static str> {
    match outcome.ready_reason() {
        "CloudError" => vec!["cloud"],
        "ReconcileFailed" => vec!["reconcile"],
        "ClusterNotReady" => vec!["cluster"],
        "PolicyDenied" => vec!["policy_denied"],
        "InvalidSpec" => vec!["invalid_spec"],
        _ => Vec::new(),
    }
}

/// The clouds an object's links are on: its spec's, and what its status records as applied.
fn clouds_of(object: &AppIdentity) -> Vec<Cloud> {
    let applied = object.status.iter().flat_map(|s| &s.applied);
    let types: BTreeSet<Cloud> = object
        .spec
        .services
        .iter()
        .chain(applied)
        .flat_map(|s| &s.connections)
        .filter_map(|c| match c.get("type").and_then(|t| t.as_str()) {
            Some("awsRole") => Some(Cloud::Aws),
            Some("azureManagedIdentity") => Some(Cloud::Azure),
            Some("gcpServiceAccount") => Some(Cloud::Gcp),
            _ => None,
        })
        .collect();
    types.into_iter().collect()
}

/// What a reconcile of `object` depends on, beside its status: its generation (the spec), its
/// finalizers and deletion, and the orphan annotation.
fn trigger_hash(object: &AppIdentity) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    object.metadata.generation.hash(&mut h);
    object.metadata.uid.hash(&mut h);
    object.metadata.finalizers.hash(&mut h);
    object.metadata.deletion_timestamp.is_some().hash(&mut h);
    object.annotations().get(ORPHAN_ANNOTATION).hash(&mut h);
    h.finish()
}

fn key_of(object: &AppIdentity) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
