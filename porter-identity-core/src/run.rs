//! `RunContext`: what one run of provider calls shares — a reconcile, a verify, or a caller's
//! own batch — passed explicitly to every batch call of a provider.
//!
//! It replaces ambient state: a value passed down the calls survives a provider that spawns
//! tasks or hands work to another runtime, where task-local state would silently be lost (the
//! counts wrong, a shared listing fetched twice).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::streak::Streak;
use crate::{CallCounts, Operation};

/// Whether a run may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RunMode {
    /// Reads only: what a deploy would do (`plan`, a dry run, `verify`).
    Plan,
    /// Reads and writes: a deploy.
    Apply,
}

/// A read that one phase of a run shares with a later one, under a typed key: what a provider
/// read to bind the desired set (a namespace's associations, an identity's federated
/// credentials) serves its stale-link search right after, instead of being read again.
///
/// The key's type says what the value is; two providers' keys of different types never meet.
/// A key should name the provider's cluster as well as what was read, so that two providers of
/// one cloud in one run keep their reads apart.
///
/// ```
/// use porter_identity_core::RunContext;
/// use porter_identity_core::provider::SharedRead;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// struct NamespaceLinks { cluster: String, namespace: String }
/// impl SharedRead for NamespaceLinks {
///     type Value = Vec<String>;
/// }
///
/// let run = RunContext::apply();
/// let key = NamespaceLinks { cluster: "prod".into(), namespace: "shop".into() };
/// run.share(key.clone(), vec!["a-1".to_owned()]);
/// assert_eq!(run.take_shared(&key), Some(vec!["a-1".to_owned()]));
/// assert_eq!(run.take_shared(&key), None, "a shared read is taken once");
/// ```
pub trait SharedRead: Eq + Hash + Send + 'static {
    /// What was read.
    type Value: Send + 'static;
}

/// The shared state of one run of provider calls: its [mode](RunMode), the cloud calls it made
/// ([`calls`](Self::calls)), and the reads its phases share ([`share`](Self::share),
/// [`take_shared`](Self::take_shared)).
///
/// The [`Reconciler`](crate::Reconciler) makes one per reconcile; a caller driving a
/// provider's batch calls directly makes one per piece of work it wants counted. Cloning is
/// cheap and shares the state, so a provider may hand a clone to tasks it spawns.
///
/// ```
/// use porter_identity_core::{Binding, RunContext, WorkloadIdentityProvider};
///
/// async fn deploy(provider: &dyn WorkloadIdentityProvider, bindings: &[Binding]) {
///     let run = RunContext::apply();
///     let results = provider.bind_all(&run, bindings).await;
///     println!("{} bound, {} cloud calls", results.iter().filter(|r| r.is_ok()).count(), run.calls().total());
/// }
/// ```
#[derive(Clone)]
pub struct RunContext {
    inner: Arc<Inner>,
}

struct Inner {
    mode: RunMode,
    calls: Mutex<CallCounts>,
    /// One typed map per key type: `TypeId::of::<K>()` → `HashMap<K, K::Value>`.
    reads: Mutex<HashMap<TypeId, Box<dyn Any + Send>>>,
    /// The failure streak of each endpoint of each provider's gate (see `streak.rs`).
    streaks: Mutex<HashMap<(u64, &'static str), Arc<Streak>>>,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("mode", &self.inner.mode)
            .field("calls", &self.calls().total())
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A run in `mode`, with no calls counted and nothing shared.
    pub fn new(mode: RunMode) -> Self {
        RunContext {
            inner: Arc::new(Inner {
                mode,
                calls: Mutex::new(CallCounts::default()),
                reads: Mutex::new(HashMap::new()),
                streaks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A run that may write.
    pub fn apply() -> Self {
        Self::new(RunMode::Apply)
    }

    /// A run that only reads.
    pub fn plan() -> Self {
        Self::new(RunMode::Plan)
    }

    /// The mode.
    pub fn mode(&self) -> RunMode {
        self.inner.mode
    }

    /// Whether this run only reads.
    pub fn is_plan(&self) -> bool {
        self.inner.mode == RunMode::Plan
    }

    /// The cloud calls made in this run so far, by cloud and operation, retries included.
    pub fn calls(&self) -> CallCounts {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts one attempt of `operation` (done by [`CloudCalls`](crate::provider::CloudCalls)
    /// for every attempt it makes).
    pub fn record_call(&self, operation: Operation) {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(operation, 1);
    }

    /// The failure streak, in this run, of `endpoint` as the gate `gate` calls it: made on
    /// first use with `limit` failures in a row.
    pub(crate) fn streak(&self, gate: u64, endpoint: &'static str, limit: u32) -> Arc<Streak> {
        self.inner
            .streaks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((gate, endpoint))
            .or_insert_with(|| Arc::new(Streak::new(limit)))
            .clone()
    }

    /// Keeps `value`, read from the cloud, under `key` for the rest of this run. A later
    /// share under an equal key replaces it.
    pub fn share<K: SharedRead>(&self, key: K, value: K::Value) {
        let mut reads = self
            .inner
            .reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let map = reads
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(HashMap::<K, K::Value>::new()));
        // The entry of K's TypeId always holds a HashMap<K, K::Value>: only this function
        // inserts, and it inserts that type.
        if let Some(map) = map.downcast_mut::<HashMap<K, K::Value>>() {
            map.insert(key, value);
        }
    }

    /// Takes what an earlier phase of this run shared under `key`. A shared read is taken once:
    /// a second take finds nothing.
    pub fn take_shared<K: SharedRead>(&self, key: &K) -> Option<K::Value> {
        self.inner
            .reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&TypeId::of::<K>())?
            .downcast_mut::<HashMap<K, K::Value>>()?
            .remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cloud;

    #[derive(Debug, PartialEq, Eq, Hash)]
    struct A(&'static str);
    impl SharedRead for A {
        type Value = u32;
    }
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct B(&'static str);
    impl SharedRead for B {
        type Value = String;
    }

    #[test]
    fn reads_are_typed_by_key_and_taken_once() {
        let run = RunContext::apply();
        run.share(A("k"), 7);
        run.share(B("k"), "seven".to_owned());
        assert_eq!(run.take_shared(&A("other")), None);
        assert_eq!(run.take_shared(&A("k")), Some(7));
        assert_eq!(run.take_shared(&A("k")), None, "taken once");
        assert_eq!(run.take_shared(&B("k")).as_deref(), Some("seven"));
        assert_eq!(RunContext::apply().take_shared(&A("k")), None, "runs apart");
    }

    #[tokio::test]
    async fn counts_and_reads_survive_spawned_tasks() {
        let run = RunContext::plan();
        let op = Operation::new(Cloud::Aws, "GetRole");
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let run = run.clone();
                tokio::spawn(async move {
                    run.record_call(op);
                    if i == 0 {
                        run.share(A("listing"), 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(run.calls().get(Cloud::Aws, "GetRole"), 4);
        assert_eq!(run.take_shared(&A("listing")), Some(1));
        assert!(run.is_plan());
        assert!(format!("{run:?}").contains("calls: 4"));
    }
}
