//! How providers make cloud calls — at most N at once, each under the [`RetryPolicy`] — and
//! how the calls of a run are counted ([`CallCounts`], in the [`RunContext`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use crate::streak::Streak;
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
    endpoint: &'static str,
    name: &'static str,
}

impl Operation {
    /// The operation `name` of `cloud`'s API, on the cloud's one endpoint (see
    /// [`on_endpoint`](Self::on_endpoint)).
    pub const fn new(cloud: Cloud, name: &'static str) -> Self {
        Operation {
            cloud,
            endpoint: "",
            name,
        }
    }

    /// The same operation, served by the cloud's `endpoint` (`"eks"`, `"iam"`): operations of
    /// one endpoint share its failure streak in a run, so that chains of calls joined for one
    /// operation spend one retry budget against an endpoint that is down, not one each; an
    /// endpoint that is down does not stop the calls of another.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Operation};
    /// const GET_ROLE: Operation = Operation::new(Cloud::Aws, "GetRole").on_endpoint("iam");
    /// assert_eq!(GET_ROLE.endpoint(), "iam");
    /// assert_eq!(Operation::new(Cloud::Azure, "Identities_Get").endpoint(), "");
    /// ```
    #[must_use]
    pub const fn on_endpoint(self, endpoint: &'static str) -> Self {
        Operation { endpoint, ..self }
    }

    /// The endpoint serving it: `""` for a cloud's one endpoint.
    pub const fn endpoint(self) -> &'static str {
        self.endpoint
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
/// One failure, one budget: the calls of one endpoint in one run share a failure streak. When
/// an endpoint has failed `max_attempts` attempts in a row (5xx, no answer in time) in a run,
/// it is taken as down for that run: the calls waiting to retry stop with their last error, and
/// new calls go one at a time, each tried once, until one succeeds. So chains of calls joined
/// for one operation make `max_attempts` attempts in all against an endpoint that is down, not
/// `max_attempts` each. Throttling and other answers end a streak: they say the endpoint is up.
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
    /// Names this gate's endpoints' failure streaks in a run: two providers of one cloud in
    /// one run (two clusters, two regions) keep theirs apart.
    id: u64,
}

/// The next [`CloudCalls`]' id.
static NEXT_GATE: AtomicU64 = AtomicU64::new(0);

impl CloudCalls {
    /// A gate letting `concurrency` calls (at least 1) through at once.
    pub fn new(retry: RetryPolicy, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        CloudCalls {
            retry,
            concurrency,
            gate: Arc::new(Semaphore::new(concurrency)),
            id: NEXT_GATE.fetch_add(1, Ordering::Relaxed),
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
        let streak = self.streak(run, operation);
        let _place = self.gate.acquire().await.ok();
        self.retry.run_counted(run, operation, &streak, call).await
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
        let streak = self.streak(run, operation);
        let _place = self.gate.acquire().await.ok();
        self.retry
            .clone()
            .max_attempts(1)
            .run_counted(run, operation, &streak, call)
            .await
    }

    /// The failure streak of `operation`'s endpoint in `run`.
    fn streak(&self, run: &RunContext, operation: Operation) -> Arc<Streak> {
        run.streak(self.id, operation.endpoint(), self.retry.get_max_attempts())
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

    /// Adds the calls of `other` (another run's: a reconcile's and its verify's, say).
    pub fn merge(&mut self, other: &CallCounts) {
        for (cloud, ops) in &other.counts {
            let mine = self.counts.entry(*cloud).or_default();
            for (op, n) in ops {
                *mine.entry(op.clone()).or_default() += n;
            }
        }
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

    use crate::ErrorKind;

    use super::*;

    const OP: Operation = Operation::new(Cloud::Aws, "Op");

    const EKS_A: Operation =
        Operation::new(Cloud::Aws, "ListPodIdentityAssociations").on_endpoint("eks");
    const EKS_B: Operation = Operation::new(Cloud::Aws, "DescribeCluster").on_endpoint("eks");
    const IAM: Operation = Operation::new(Cloud::Aws, "GetRole").on_endpoint("iam");

    /// A chain of `operation` that always fails with `kind`, counting its attempts.
    async fn always(
        calls: &CloudCalls,
        run: &RunContext,
        operation: Operation,
        kind: ErrorKind,
        attempts: &AtomicUsize,
    ) -> Result<()> {
        calls
            .run(run, operation, || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err(operation.error(kind, "HTTP 503"))
            })
            .await
    }

    #[test]
    fn merged_counts_add_up_by_cloud_and_operation() {
        let mut a = CallCounts::default();
        a.add(OP, 2);
        a.add(IAM, 1);
        let mut b = CallCounts::default();
        b.add(OP, 3);
        b.add(Operation::new(Cloud::Gcp, "setIamPolicy"), 1);
        a.merge(&b);
        assert_eq!(a.get(Cloud::Aws, "Op"), 5);
        assert_eq!(a.get(Cloud::Aws, "GetRole"), 1);
        assert_eq!(a.get(Cloud::Gcp, "setIamPolicy"), 1);
        assert_eq!(a.total(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn joined_chains_share_one_budget_against_a_down_endpoint() {
        let calls = CloudCalls::new(RetryPolicy::default().jitter_seed(1), 16);
        let run = RunContext::apply();
        let (a, b, c) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let (ra, rb, rc) = futures_util::future::join3(
            always(&calls, &run, EKS_A, ErrorKind::Unavailable, &a),
            always(&calls, &run, EKS_B, ErrorKind::Unavailable, &b),
            always(&calls, &run, EKS_A, ErrorKind::Unavailable, &c),
        )
        .await;
        let total = a.load(Ordering::SeqCst) + b.load(Ordering::SeqCst) + c.load(Ordering::SeqCst);
        assert_eq!(total, 6, "max_attempts in all, not 6 per chain");
        assert_eq!(run.calls().total(), 6);
        for r in [ra, rb, rc] {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            let fix = e.fix().unwrap();
            assert!(
                fix.contains("failed 6 attempts in a row in this run"),
                "{fix}"
            );
            assert!(fix.contains("retry the deploy later"), "{fix}");
        }
        // Once down, a new call of the endpoint is tried once, not six times.
        let d = AtomicUsize::new(0);
        assert!(
            always(&calls, &run, EKS_B, ErrorKind::Unavailable, &d)
                .await
                .is_err()
        );
        assert_eq!(d.load(Ordering::SeqCst), 1);
        // Another endpoint of the same cloud, and the same endpoint in another run, keep theirs.
        let e = AtomicUsize::new(0);
        assert!(
            always(&calls, &run, IAM, ErrorKind::Unavailable, &e)
                .await
                .is_err()
        );
        assert_eq!(e.load(Ordering::SeqCst), 6);
        let f = AtomicUsize::new(0);
        let other_run = RunContext::apply();
        assert!(
            always(&calls, &other_run, EKS_A, ErrorKind::Unavailable, &f)
                .await
                .is_err()
        );
        assert_eq!(f.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_keeps_a_budget_per_call() {
        // Throttling says the endpoint is up: each call keeps its own attempts.
        let calls = CloudCalls::new(RetryPolicy::default().jitter_seed(2), 16);
        let run = RunContext::apply();
        let (a, b) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let _ = futures_util::future::join(
            always(&calls, &run, EKS_A, ErrorKind::Throttled, &a),
            always(&calls, &run, EKS_B, ErrorKind::Throttled, &b),
        )
        .await;
        assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst)), (6, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_that_failed_together_retry_and_succeed() {
        // A blip: the first attempt of each of 16 calls in flight at once fails; the endpoint
        // is back for their retries.
        let calls = CloudCalls::new(RetryPolicy::default().jitter_seed(3), 16);
        let run = RunContext::apply();
        let first = AtomicUsize::new(0);
        let one = || async {
            let tried = std::sync::atomic::AtomicBool::new(false);
            calls
                .run(&run, EKS_A, || async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if tried.swap(true, Ordering::SeqCst) {
                        Ok(())
                    } else {
                        first.fetch_add(1, Ordering::SeqCst);
                        Err(EKS_A.error(ErrorKind::Unavailable, "HTTP 503"))
                    }
                })
                .await
        };
        let results = futures_util::future::join_all((0..16).map(|_| one())).await;
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(first.load(Ordering::SeqCst), 16);
        assert_eq!(run.calls().total(), 32);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flaky_endpoint_does_not_stop_a_batch() {
        // One call in three fails: successes keep ending the streak.
        let calls = CloudCalls::new(RetryPolicy::default().jitter_seed(5), 16);
        let run = RunContext::apply();
        let n = AtomicUsize::new(0);
        let one = || {
            calls.run(&run, EKS_A, || async {
                let k = n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                if k.is_multiple_of(3) {
                    Err(EKS_A.error(ErrorKind::Unavailable, "HTTP 503"))
                } else {
                    Ok(())
                }
            })
        };
        let results = futures_util::future::join_all((0..60).map(|_| one())).await;
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{failed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_while_the_endpoint_answers_others_is_retried_with_the_same_time() {
        // One call stalls on its first three attempts while another call of the endpoint keeps
        // being answered: each retry gets 5 s (a lost request), not 10 and 20 s; the fourth cut
        // in a row would get more. Alone, the same stalls double the time (a slow endpoint).
        let stalls = |n: usize| {
            let calls = CloudCalls::new(RetryPolicy::default().max_attempts(10).jitter_seed(3), 16);
            let run = RunContext::apply();
            (calls, run, AtomicUsize::new(0), n)
        };
        let (calls, run, tries, n) = stalls(3);
        let started = tokio::time::Instant::now();
        let stalled = async {
            let r = calls
                .run(&run, EKS_A, || async {
                    if tries.fetch_add(1, Ordering::SeqCst) < n {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
                .await;
            (r, started.elapsed())
        };
        let others = async {
            for _ in 0..80 {
                calls
                    .run(&run, EKS_B, || async {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        };
        let ((r, lone), ()) = futures_util::future::join(stalled, others).await;
        r.unwrap();
        // 3 × 5 s cut, plus at most three jittered delays (100 + 200 + 400 ms).
        assert!(lone < Duration::from_millis(15_800), "{lone:?}");

        let (calls, run, tries, n) = stalls(3);
        let started = tokio::time::Instant::now();
        calls
            .run(&run, EKS_A, || async {
                if tries.fetch_add(1, Ordering::SeqCst) < n {
                    std::future::pending::<()>().await;
                }
                Ok(())
            })
            .await
            .unwrap();
        // Nothing else answered: 5 + 10 + 20 s.
        assert!(
            started.elapsed() >= Duration::from_secs(35),
            "{:?}",
            started.elapsed()
        );
    }

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
