//! How providers make cloud calls — at most N at once, each under the [`RetryPolicy`] — and
//! how the calls of a run are counted ([`CallCounts`], in the [`RunContext`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::{Cloud, Error, ErrorKind, Result, RetryPolicy, RunContext};

/// How many cloud calls a provider makes at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// One operation of a cloud's API, named as the cloud names it (`GetRole`,
/// `FederatedIdentityCredentials_List`, `projects.serviceAccounts.getIamPolicy`).
///
/// Each provider defines its operations once, as constants, and uses them for the call, its
/// span, its count and its fake's counters, so that a misspelt name cannot miscount.
///
/// ```
/// use porter_identity_core::{Cloud, Operation};
/// const GET_ROLE: Operation = Operation::new(Cloud::Aws, "GetRole");
/// assert_eq!(GET_ROLE.cloud(), Cloud::Aws);
/// assert_eq!(GET_ROLE.name(), "GetRole");
/// assert_eq!(GET_ROLE.to_string(), "GetRole");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    cloud: Cloud,
    name: &'static str,
}

impl Operation {
    /// The operation `name` of `cloud`'s API.
    pub const fn new(cloud: Cloud, name: &'static str) -> Self {
        Operation { cloud, name }
    }

    /// The cloud.
    pub const fn cloud(self) -> Cloud {
        self.cloud
    }

    /// The cloud's name of the operation.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The names of `operations`, in order: what a fake's counters are made with.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Operation};
    /// const ALL: [Operation; 2] = [Operation::new(Cloud::Gcp, "getIamPolicy"), Operation::new(Cloud::Gcp, "setIamPolicy")];
    /// const NAMES: [&str; 2] = Operation::names(ALL);
    /// assert_eq!(NAMES, ["getIamPolicy", "setIamPolicy"]);
    /// ```
    pub const fn names<const N: usize>(operations: [Operation; N]) -> [&'static str; N] {
        let mut names = [""; N];
        let mut i = 0;
        while i < N {
            names[i] = operations[i].name;
            i += 1;
        }
        names
    }

    /// An error of this operation: [`Error::cloud`] with its cloud and name.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, ErrorKind, Operation};
    /// const GET_ROLE: Operation = Operation::new(Cloud::Aws, "GetRole");
    /// let e = GET_ROLE.error(ErrorKind::NotFound, "role \"x\" does not exist");
    /// assert_eq!(e.operation(), Some("GetRole"));
    /// assert_eq!(e.cloud_name(), Some(Cloud::Aws));
    /// ```
    pub fn error(self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::cloud(kind, self.cloud, self.name, message)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The gate every cloud call of a provider goes through: at most `concurrency` calls in
/// flight across everything the provider is doing (a `bind_all`, a `verify` beside it, …), and
/// each one run under the provider's [`RetryPolicy`] (per-attempt timeout, backoff, deadline)
/// and counted, attempt by attempt, in the [`RunContext`] it is made for.
///
/// A call keeps its place while it backs off, so a throttled cloud slows the whole provider
/// down instead of being hit by fresh calls. Cloning is cheap and shares the gate.
///
/// ```
/// use porter_identity_core::{Cloud, Operation, RetryPolicy, RunContext};
/// use porter_identity_core::provider::CloudCalls;
///
/// const GET_ROLE: Operation = Operation::new(Cloud::Aws, "GetRole");
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let calls = CloudCalls::new(RetryPolicy::default(), 8);
/// let run = RunContext::plan();
/// let n = calls.run(&run, GET_ROLE, || async { Ok::<_, porter_identity_core::Error>(42) }).await?;
/// assert_eq!(n, 42);
/// assert_eq!(run.calls().get(Cloud::Aws, "GetRole"), 1);
/// assert_eq!(calls.concurrency(), 8);
/// # Ok::<(), porter_identity_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CloudCalls {
    retry: RetryPolicy,
    concurrency: usize,
    gate: Arc<Semaphore>,
}

impl CloudCalls {
    /// A gate letting `concurrency` calls (at least 1) through at once.
    pub fn new(retry: RetryPolicy, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        CloudCalls {
            retry,
            concurrency,
            gate: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Runs one cloud operation for `run`: waits for a place, then runs `call` under the retry
    /// policy, counting each attempt in `run`.
    pub async fn run<T, F, Fut>(&self, run: &RunContext, operation: Operation, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // The semaphore is never closed, so acquiring only fails in theory; then the call
        // simply goes through ungated.
        let _place = self.gate.acquire().await.ok();
        self.retry.run_counted(run, operation, call).await
    }

    /// Runs one attempt of an operation whose retry belongs to the caller: a compare-and-set
    /// write that must not be repeated as it is, because a retry has to read again first (see
    /// [`RetryPolicy::run_cycle`]). Gated, counted and bounded by the per-attempt timeout like
    /// [`run`](Self::run), never retried.
    pub async fn run_once<T, F, Fut>(
        &self,
        run: &RunContext,
        operation: Operation,
        call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let _place = self.gate.acquire().await.ok();
        self.retry
            .clone()
            .max_attempts(1)
            .run_counted(run, operation, call)
            .await
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

/// Cloud calls counted in a [`RunContext`]: attempts by cloud and by the cloud's operation
/// name, retries included.
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

    pub(crate) fn add(&mut self, operation: Operation, n: u64) {
        *self
            .counts
            .entry(operation.cloud())
            .or_default()
            .entry(operation.name().to_owned())
            .or_default() += n;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const OP: Operation = Operation::new(Cloud::Aws, "Op");

    #[tokio::test(start_paused = true)]
    async fn the_gate_bounds_calls_in_flight() {
        let calls = CloudCalls::new(RetryPolicy::none(), 3);
        let run = RunContext::apply();
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let one = || async {
            calls
                .run(&run, OP, || async {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
        };
        let results = futures_util::future::join_all((0..10).map(|_| one())).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(run.calls().get(Cloud::Aws, "Op"), 10);
        assert_eq!(run.calls().total(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_counts_in_its_own_run() {
        let calls = CloudCalls::new(
            RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(1)),
            4,
        );
        let (one, other) = (RunContext::apply(), RunContext::apply());
        let b = Operation::new(Cloud::Azure, "B");
        let failing = || async {
            Err::<(), _>(crate::Error::cloud(
                crate::ErrorKind::Throttled,
                Cloud::Aws,
                "Op",
                "slow down",
            ))
        };
        assert!(calls.run(&one, OP, failing).await.is_err());
        calls.run(&other, b, || async { Ok(()) }).await.unwrap();
        calls.run_once(&other, OP, failing).await.unwrap_err();
        assert_eq!(one.calls().get(Cloud::Aws, "Op"), 3, "retries count");
        assert_eq!(one.calls().total(), 3);
        assert_eq!(
            other.calls().iter().collect::<Vec<_>>(),
            vec![(Cloud::Aws, "Op", 1), (Cloud::Azure, "B", 1)]
        );
    }
}
