//! How providers make cloud calls — at most N at once, each under the [`RetryPolicy`] — and
//! how the calls a piece of work made are counted ([`count_calls`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use crate::{Cloud, Result, RetryPolicy};

/// How many cloud calls a provider makes at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The gate every cloud call of a provider goes through: at most `concurrency` calls in
/// flight across everything the provider is doing (a `bind_all`, a `verify` beside it, …), and
/// each one run under the provider's [`RetryPolicy`] (per-attempt timeout, backoff, deadline).
///
/// A call keeps its place while it backs off, so a throttled cloud slows the whole provider
/// down instead of being hit by fresh calls. Cloning is cheap and shares the gate.
///
/// ```
/// use porter_identity_core::{Cloud, CloudCalls, RetryPolicy};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let calls = CloudCalls::new(Cloud::Aws, RetryPolicy::default(), 8);
/// let n = calls.run("GetRole", || async { Ok::<_, porter_identity_core::Error>(42) }).await?;
/// assert_eq!(n, 42);
/// assert_eq!(calls.concurrency(), 8);
/// # Ok::<(), porter_identity_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CloudCalls {
    cloud: Cloud,
    retry: RetryPolicy,
    concurrency: usize,
    gate: Arc<Semaphore>,
}

impl CloudCalls {
    /// A gate for `cloud` letting `concurrency` calls (at least 1) through at once.
    pub fn new(cloud: Cloud, retry: RetryPolicy, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        CloudCalls {
            cloud,
            retry,
            concurrency,
            gate: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Runs one cloud operation: waits for a place, then runs `call` under the retry policy.
    /// `operation` is the cloud's own name of the call (`GetRole`), used in errors, logs and
    /// counts.
    pub async fn run<T, F, Fut>(&self, operation: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // The semaphore is never closed, so acquiring only fails in theory; then the call
        // simply goes through ungated.
        let _place = self.gate.acquire().await.ok();
        self.retry.run(self.cloud, operation, call).await
    }

    /// Runs one attempt of an operation whose retry belongs to the caller: a compare-and-set
    /// write that must not be repeated as it is, because a retry has to read again first (see
    /// [`RetryPolicy::run_cycle`]). Gated, counted and bounded by the per-attempt timeout like
    /// [`run`](Self::run), never retried.
    pub async fn run_once<T, F, Fut>(&self, operation: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let _place = self.gate.acquire().await.ok();
        self.retry
            .clone()
            .max_attempts(1)
            .run(self.cloud, operation, call)
            .await
    }

    /// The cloud.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// How many calls may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The retry policy of every call.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// Cloud calls counted by [`count_calls`]: attempts by cloud and by the cloud's operation name,
/// retries included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    counts: BTreeMap<Cloud, BTreeMap<String, u64>>,
}

impl CallCounts {
    /// The attempts of `operation` on `cloud`.
    pub fn get(&self, cloud: Cloud, operation: &str) -> u64 {
        self.counts
            .get(&cloud)
            .and_then(|ops| ops.get(operation))
            .copied()
            .unwrap_or(0)
    }

    /// Every call counted, on every cloud.
    pub fn total(&self) -> u64 {
        self.counts.values().flat_map(BTreeMap::values).sum()
    }

    /// The calls of one cloud, by operation.
    pub fn of(&self, cloud: Cloud) -> BTreeMap<String, u64> {
        self.counts.get(&cloud).cloned().unwrap_or_default()
    }

    /// Every (cloud, operation, count), in order.
    pub fn iter(&self) -> impl Iterator<Item = (Cloud, &str, u64)> {
        self.counts
            .iter()
            .flat_map(|(cloud, ops)| ops.iter().map(move |(op, n)| (*cloud, op.as_str(), *n)))
    }

    fn add(&mut self, cloud: Cloud, operation: &str, n: u64) {
        *self
            .counts
            .entry(cloud)
            .or_default()
            .entry(operation.to_owned())
            .or_default() += n;
    }

    fn merge(&mut self, other: &CallCounts) {
        for (cloud, op, n) in other.iter() {
            self.add(cloud, op, n);
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CallCounts {
    /// `{"aws": {"ListPodIdentityAssociations": 10, ...}, ...}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.counts.len()))?;
        for (cloud, ops) in &self.counts {
            map.serialize_entry(cloud.as_str(), ops)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Default)]
struct CallLog(Arc<Mutex<CallCounts>>);

impl CallLog {
    fn with<R>(&self, f: impl FnOnce(&mut CallCounts) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

tokio::task_local! {
    // Task-local rather than per provider, so that two reconciles sharing one provider each
    // count only their own calls.
    static CALL_LOG: CallLog;
}

/// Counts one attempt, when a [`count_calls`] is running in this task.
pub(crate) fn record(cloud: Cloud, operation: &str) {
    let _ = CALL_LOG.try_with(|log| log.with(|c| c.add(cloud, operation, 1)));
}

/// Runs `work` and counts the cloud call attempts it makes through [`RetryPolicy::run`] (and
/// so through every provider of porter-identity), by cloud and operation.
///
/// Counting follows the task: calls made by `work`, and by futures it polls, are counted;
/// calls of other tasks using the same provider are not. Nested counts also add to the
/// enclosing one.
///
/// ```
/// use porter_identity_core::{count_calls, Cloud, RetryPolicy};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let policy = RetryPolicy::none();
/// let (_, calls) = count_calls(async {
///     let _ = policy.run(Cloud::Aws, "GetRole", || async { Ok::<_, porter_identity_core::Error>(()) }).await;
/// }).await;
/// assert_eq!(calls.get(Cloud::Aws, "GetRole"), 1);
/// # });
/// ```
pub async fn count_calls<F: Future>(work: F) -> (F::Output, CallCounts) {
    let log = CallLog::default();
    let output = CALL_LOG.scope(log.clone(), work).await;
    let counts = log.with(|c| c.clone());
    let _ = CALL_LOG.try_with(|outer| outer.with(|o| o.merge(&counts)));
    (output, counts)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_gate_bounds_calls_in_flight() {
        let calls = CloudCalls::new(Cloud::Aws, RetryPolicy::none(), 3);
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let one = || async {
            calls
                .run("Op", || async {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
        };
        let (results, counted) =
            count_calls(futures_util::future::join_all((0..10).map(|_| one()))).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(counted.get(Cloud::Aws, "Op"), 10);
        assert_eq!(counted.total(), 10);
    }

    #[tokio::test]
    async fn counts_are_per_task_and_nest() {
        let policy = RetryPolicy::none();
        let ok = || async { Ok::<_, crate::Error>(()) };
        // Outside any count: recorded nowhere, no panic.
        policy.run(Cloud::Gcp, "Outside", ok).await.unwrap();
        let ((_, inner), outer) = count_calls(async {
            policy.run(Cloud::Aws, "A", ok).await.unwrap();
            count_calls(async {
                policy.run(Cloud::Azure, "B", ok).await.unwrap();
            })
            .await
        })
        .await;
        assert_eq!(inner.total(), 1);
        assert_eq!(inner.get(Cloud::Azure, "B"), 1);
        assert_eq!(outer.get(Cloud::Aws, "A"), 1);
        assert_eq!(outer.get(Cloud::Azure, "B"), 1);
        assert_eq!(outer.get(Cloud::Gcp, "Outside"), 0);
        assert_eq!(
            outer.iter().collect::<Vec<_>>(),
            vec![(Cloud::Aws, "A", 1), (Cloud::Azure, "B", 1)]
        );
    }
}
