//! `RetryPolicy`: exponential backoff with full jitter, a per-attempt timeout, bounded by
//! attempts and by a deadline that also cuts a call in flight.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::streak::{Answer, Streak, Ticket};

/// Cut attempts of one call in a row, each while the endpoint answered others, after which its
/// retries get more time anyway: the call itself may be slow.
const LONE_STALLS_BEFORE_GROWING: u32 = 3;
use crate::{Cloud, Error, ErrorKind, Operation, Result, RunContext, Target};

/// How a provider retries a cloud call that failed with a retryable error
/// ([`Error::is_retryable`](crate::Error::is_retryable): throttling, transient failures, calls
/// that timed out, and cloud-specific conflicts a retry resolves).
///
/// - **Per-attempt timeout** ([`attempt_timeout`](Self::attempt_timeout), 5 s by default): an
///   attempt that has not answered by then is dropped and counts as a transient failure
///   (`Unavailable`), retried like a 5xx. Every call porter-identity makes answers in well under
///   a second when the cloud is well, so a call that has not answered in 5 s has most likely
///   lost its request or connection and is better sent again than waited for. When the
///   endpoint answered other calls of the run meanwhile, that is what happened, and the retry
///   gets the same time (after three such cuts in a row, more: the call may be slow on its
///   own); when it answered none, it may be merely slow, and each retry gets twice the time,
///   up to [`max_attempt_timeout`](Self::max_attempt_timeout) (20 s by default: 5 + 10 + 20 s). Every write porter-identity makes is idempotent (a
///   create carries an idempotency token, an update sets a value, a delete of an absent link is
///   success), so a retried attempt whose first try did land duplicates nothing.
/// - **Backoff**: the delay before retry *n* (1-based) is a uniformly random duration in
///   `[0, min(max_backoff, initial_backoff × 2^(n-1))]` ("full jitter"), so that many deploy
///   processes throttled together do not retry in lockstep; and at least the `Retry-After` the
///   cloud sent ([`Error::retry_after`](crate::Error::retry_after)), when that fits the deadline.
/// - **Bounds**: at most [`max_attempts`](Self::max_attempts) attempts, and the whole operation
///   — attempts in flight included — ends by the [`deadline`](Self::deadline). The last error
///   is returned; when it is retryable, its fix says what the caller can do.
///
/// - **Contended writes**: a write refused because another writer holds the object — Azure's
///   concurrent-writes 409 on one managed identity, GCP's stale etag — is a retryable
///   `Conflict`. It waits for the other writer: it is retried until the deadline, not only
///   `max_attempts` times (unless the policy allows no retry at all), each delay a random
///   duration between `initial_backoff` and three times the one before, at most 2 s
///   ("decorrelated jitter"), so that contending deploy processes spread out.
///
/// Non-retryable errors are returned at once. This is the only retry layer: the providers turn
/// the cloud SDKs' own retries off, so that these counts and this deadline are the truth.
///
/// ```
/// use std::time::Duration;
/// use porter_identity_core::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(8)
///     .initial_backoff(Duration::from_millis(100))
///     .attempt_timeout(Duration::from_secs(10))
///     .deadline(Duration::from_secs(30));
/// assert_eq!(policy.get_max_attempts(), 8);
/// assert_eq!(policy.get_attempt_timeout(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Duration,
    max_attempt_timeout: Duration,
    deadline: Duration,
    seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// 6 attempts, 200 ms initial backoff, 10 s maximum backoff, 5 s for a first attempt
    /// (doubling after each attempt cut, up to 20 s), 60 s in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            max_attempt_timeout: Duration::from_secs(20),
            deadline: Duration::from_secs(60),
            seed: None,
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is made once (still bounded by the timeouts).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The most calls made for one operation, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The upper bound of the first delay.
    #[must_use]
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The upper bound of any one delay.
    #[must_use]
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// How long a first attempt may take before it is dropped and retried (at least 1 ms).
    /// Each attempt after one that was cut gets twice the time of the one before, up to
    /// [`max_attempt_timeout`](Self::max_attempt_timeout) (or this timeout, if longer).
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// The longest an attempt may take, after earlier attempts were cut by their timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use porter_identity_core::RetryPolicy;
    ///
    /// // Every attempt gets 20 s, none fewer.
    /// let patient = RetryPolicy::default()
    ///     .attempt_timeout(Duration::from_secs(20))
    ///     .max_attempt_timeout(Duration::from_secs(20));
    /// assert_eq!(patient.get_max_attempt_timeout(), Duration::from_secs(20));
    /// ```
    #[must_use]
    pub fn max_attempt_timeout(mut self, d: Duration) -> Self {
        self.max_attempt_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// The total time an operation may take, from its first attempt, attempts in flight
    /// included (at least 1 ms).
    #[must_use]
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d.max(Duration::from_millis(1));
        self
    }

    /// Fixes the jitter's random sequence, for reproducible tests.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The configured maximum attempts.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured timeout of a first attempt.
    pub fn get_attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// The configured longest attempt timeout.
    pub fn get_max_attempt_timeout(&self) -> Duration {
        self.max_attempt_timeout
    }

    /// The configured deadline.
    pub fn get_deadline(&self) -> Duration {
        self.deadline
    }

    /// The longest wait between two attempts of a contended write.
    fn contended_ceiling(&self) -> Duration {
        self.max_backoff.min(CONTENDED_MAX_BACKOFF)
    }

    /// The upper bound of the delay before retry `retry` (1-based), before jitter.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Runs `call`, the `operation` of `cloud`, until it succeeds, fails with a non-retryable
    /// error, or the attempts or the deadline run out. Each attempt is bounded by the
    /// per-attempt timeout and by what is left of the deadline. A provider's calls go through
    /// [`CloudCalls::run`](crate::provider::CloudCalls::run) instead, which also counts them.
    pub async fn run<T, F, Fut>(&self, cloud: Cloud, operation: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.attempts(
            Target::Cloud(cloud),
            operation,
            Some(self.attempt_timeout),
            None,
            call,
        )
        .await
    }

    /// [`run`](Self::run), counting each attempt in `run` and spending the budget of its
    /// endpoint's failure `streak` in `run`.
    pub(crate) async fn run_counted<T, F, Fut>(
        &self,
        run: &RunContext,
        operation: Operation,
        streak: &Streak,
        call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.attempts(
            Target::Cloud(operation.cloud()),
            operation.name(),
            Some(self.attempt_timeout),
            Some((run, operation, streak)),
            call,
        )
        .await
    }

    /// Runs `call`, a Kubernetes API call, with the same attempts, timeouts, backoff and
    /// `Retry-After` as [`run`](Self::run) (an API server under load answers 429 with one).
    /// Its errors are [`Error::Call`]s with [`Target::Kubernetes`]; it is not counted as a cloud
    /// call.
    ///
    /// ```
    /// use porter_identity_core::{Error, ErrorKind, RetryPolicy};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let policy = RetryPolicy::default().max_attempts(2).initial_backoff(std::time::Duration::from_millis(1));
    /// let err = policy
    ///     .run_kubernetes("list pods", || async {
    ///         Err::<(), _>(Error::kubernetes(ErrorKind::Throttled, "list pods", "too many requests"))
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("kubernetes list pods failed (throttled)"));
    /// assert!(err.fix().unwrap().contains("tried 2 times"));
    /// # });
    /// ```
    pub async fn run_kubernetes<T, F, Fut>(&self, operation: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.attempts(
            Target::Kubernetes,
            operation,
            Some(self.attempt_timeout),
            None,
            call,
        )
        .await
    }

    /// Retries a whole cycle of calls, such as a read-modify-write whose write is refused when
    /// someone else wrote in between (a stale etag): each attempt runs `cycle` again from its
    /// first read. Attempts, backoff, jitter and the deadline are the policy's; the attempts are
    /// not counted as calls (the cycle's own calls are) and have no timeout of their own (the
    /// cycle's calls have theirs).
    ///
    /// An `Err` of the cycle is retried when it is retryable; an error the cycle has already
    /// retried on its own (a read that gave up) comes back as `Ok(Err(e))` and ends the loop.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Error, ErrorKind, RetryPolicy};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let tries = AtomicU32::new(0);
    /// let policy = RetryPolicy::default().initial_backoff(std::time::Duration::from_millis(1));
    /// let written = policy.run_cycle(Cloud::Gcp, "setIamPolicy", || async {
    ///     if tries.fetch_add(1, Ordering::SeqCst) == 0 {
    ///         // the etag read was stale: read again and redo the edit
    ///         return Err(Error::cloud(ErrorKind::Conflict, Cloud::Gcp, "setIamPolicy", "stale etag").retryable(true));
    ///     }
    ///     Ok(Ok::<_, Error>("written"))
    /// }).await;
    /// assert_eq!(written.unwrap(), "written");
    /// assert_eq!(tries.load(Ordering::SeqCst), 2);
    /// # });
    /// ```
    pub async fn run_cycle<T, F, Fut>(&self, cloud: Cloud, operation: &str, cycle: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T>>>,
    {
        self.attempts(Target::Cloud(cloud), operation, None, None, cycle)
            .await?
    }

    /// The retry loop of `operation` of `target`: of [`run`](Self::run) and
    /// [`run_kubernetes`](Self::run_kubernetes) (`per_attempt` set: each attempt is one call,
    /// cut at the per-attempt timeout, which doubles after each attempt it cut) and of
    /// [`run_cycle`](Self::run_cycle) (`None`: an attempt is a cycle of calls with timeouts of
    /// their own, cut only by the deadline). With `counted`, each attempt is counted in its run
    /// and admitted by its endpoint's failure streak.
    async fn attempts<T, F, Fut>(
        &self,
        target: Target,
        operation: &str,
        per_attempt: Option<Duration>,
        counted: Option<(&RunContext, Operation, &Streak)>,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let error = |kind, message: String| Error::call(kind, target, operation, message);
        let mut attempt_timeout = per_attempt.unwrap_or(self.deadline);
        let started = Instant::now();
        let mut rng = match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let mut attempt = 1;
        let mut last: Option<Error> = None;
        let mut contended_delay = self.initial_backoff;
        // Attempts of this call cut in a row while the endpoint answered other calls.
        let mut lone_stalls = 0;
        loop {
            let ticket = match counted {
                Some((run, operation, streak)) => {
                    let left = self.deadline.saturating_sub(started.elapsed());
                    match tokio::time::timeout(left, streak.admit(attempt > 1)).await {
                        Ok(Some(ticket)) => {
                            run.record_call(operation);
                            Some(ticket)
                        }
                        Ok(None) => {
                            // The endpoint is down for this run: the budget is spent.
                            let err = last.take().unwrap_or_else(|| {
                                error(ErrorKind::Unavailable, "the endpoint is down".into())
                            });
                            let err = self.stopped(err, attempt - 1, started.elapsed(), streak);
                            tracing::warn!(operation = operation.name(), attempt, error = %err, "endpoint down, retries stopped");
                            return Err(err);
                        }
                        Err(_) => {
                            let err =
                                self.deadline_error(error, target, attempt - 1, last.as_ref());
                            tracing::warn!(operation = operation.name(), attempt, error = %err, "retry deadline reached");
                            return Err(err);
                        }
                    }
                }
                None => None,
            };
            let left = self.deadline.saturating_sub(started.elapsed());
            let limit = attempt_timeout.min(left);
            let outcome = tokio::time::timeout(limit, call()).await;
            let others_answered = ticket.as_ref().is_some_and(Ticket::others_answered);
            if let Some(ticket) = ticket {
                ticket.answered(match &outcome {
                    Ok(result) => Answer::of(result),
                    Err(_) => Answer::Outage,
                });
            }
            let err = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) if limit < attempt_timeout || per_attempt.is_none() => {
                    // The deadline, not the attempt timeout, cut this attempt: no time is left
                    // for another.
                    let err = self.deadline_error(error, target, attempt, last.as_ref());
                    tracing::warn!(operation, attempt, error = %err, "retry deadline reached");
                    return Err(err);
                }
                Err(_) => {
                    let err = error(
                        ErrorKind::Unavailable,
                        format!(
                            "no answer within {} (the per-attempt timeout)",
                            Secs(attempt_timeout)
                        ),
                    );
                    // A stall is most often a lost request or connection, so attempts are cut
                    // early. While the endpoint answers other calls, that is what a stall is:
                    // the retry gets the same time (three in a row still get more, for a call
                    // that is slow on its own). An endpoint that answered nothing meanwhile may
                    // be merely slow: each retry gets twice the time, up to the longest.
                    lone_stalls = if others_answered { lone_stalls + 1 } else { 0 };
                    if lone_stalls == 0 || lone_stalls >= LONE_STALLS_BEFORE_GROWING {
                        attempt_timeout = attempt_timeout
                            .saturating_mul(2)
                            .min(self.max_attempt_timeout.max(self.attempt_timeout));
                    }
                    err
                }
            };
            if !err.is_retryable() {
                return Err(err);
            }
            // A write refused because another writer holds the object (Azure's concurrent
            // writes to one identity, GCP's stale etag) waits for that writer: it is retried
            // until the deadline, not only max_attempts times, with a backoff that reaches the
            // time a write takes and decorrelated jitter, so that contending processes spread
            // out instead of colliding again.
            let contended = is_contention(&err) && self.max_attempts > 1;
            if attempt >= self.max_attempts && !contended {
                return Err(self.gave_up(err, attempt, started.elapsed()));
            }
            let jitter = if contended {
                let upper = contended_delay
                    .saturating_mul(3)
                    .min(self.contended_ceiling())
                    .max(self.initial_backoff);
                contended_delay = random_between(&mut rng, self.initial_backoff, upper);
                contended_delay
            } else {
                random_between(&mut rng, Duration::ZERO, self.backoff_ceiling(attempt))
            };
            // A cloud that says when to come back (Retry-After) is not asked sooner.
            let delay = err.retry_after().map_or(jitter, |wait| wait.max(jitter));
            if started.elapsed() + delay >= self.deadline {
                tracing::warn!(operation, attempt, error = %err, "retry deadline reached");
                return Err(self.gave_up(err, attempt, started.elapsed()));
            }
            tracing::debug!(
                operation,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "retrying"
            );
            last = Some(err);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The last retryable error of an operation that ran out of attempts or time. An error
    /// without a fix of its own gets one: what the caller can do about a cloud that throttles
    /// or fails.
    fn gave_up(&self, err: Error, attempts: u32, elapsed: Duration) -> Error {
        // A fix of the error's own is kept; one an inner retry loop gave (a cycle's single
        // write attempt) is replaced by this loop's, which counts the attempts that matter.
        if err.fix().is_some_and(|f| !f.starts_with(TRIED)) {
            return err;
        }
        let fix = retry_fix(err.kind(), err.target(), attempts, elapsed, None);
        err.with_fix(fix)
    }

    /// The last error of an operation whose retries stopped because its endpoint failed
    /// `streak.limit()` attempts in a row in this run.
    fn stopped(&self, err: Error, attempts: u32, elapsed: Duration, streak: &Streak) -> Error {
        if err.fix().is_some_and(|f| !f.starts_with(TRIED)) {
            return err;
        }
        let fix = retry_fix(
            err.kind(),
            err.target(),
            attempts,
            elapsed,
            Some(streak.limit()),
        );
        err.with_fix(fix)
    }

    fn deadline_error(
        &self,
        error: impl Fn(ErrorKind, String) -> Error,
        target: Target,
        attempts: u32,
        previous: Option<&Error>,
    ) -> Error {
        let mut message = format!(
            "no answer before the retry deadline of {} ({attempts} attempt{})",
            Secs(self.deadline),
            if attempts == 1 { "" } else { "s" }
        );
        if let Some(previous) = previous {
            message.push_str(&format!(
                "; the attempt before failed: {}",
                previous.problem()
            ));
        }
        error(ErrorKind::Unavailable, message).with_fix(retry_fix(
            ErrorKind::Unavailable,
            Some(target),
            attempts,
            self.deadline,
            None,
        ))
    }
}

/// How every fix of an operation that ran out of attempts or time begins.
const TRIED: &str = "it was tried";

/// The most a contended write waits between attempts: about what a write of an identity or a
/// policy takes, so that a writer finds the object free soon after the one before is done.
const CONTENDED_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether `err` is a write refused because another writer holds the object: a retryable
/// conflict.
fn is_contention(err: &Error) -> bool {
    err.kind() == ErrorKind::Conflict && err.is_retryable()
}

/// A uniformly random duration in `[low, high]`.
fn random_between(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(nanos(low)..=nanos(high.max(low))))
}

/// What a caller can do about an operation that failed transiently every time it was tried.
/// `down`: the operation stopped because its endpoint failed that many attempts in a row in
/// the run.
fn retry_fix(
    kind: ErrorKind,
    target: Option<Target>,
    attempts: u32,
    elapsed: Duration,
    down: Option<u32>,
) -> String {
    let mut tried = format!(
        "{TRIED} {attempts} time{} over {}",
        if attempts == 1 { "" } else { "s" },
        Secs(elapsed)
    );
    if let Some(limit) = down {
        tried.push_str(&format!(
            ", and its endpoint failed {limit} attempts in a row in this run (of this call and of the calls made beside it), so it was not tried again"
        ));
    }
    let status = target
        .and_then(Target::cloud)
        .map_or_else(String::new, |c| {
            format!(
                "; check the {} status page ({})",
                c.display_name(),
                c.status_page()
            )
        });
    if kind == ErrorKind::Conflict {
        return format!(
            "{tried}: another writer (another deploy process) kept writing to the same object the whole time; retry the deploy, spread the deploys that write to one identity or service account over time, or allow more time with RetryPolicy::deadline"
        );
    }
    if kind == ErrorKind::Throttled {
        format!(
            "{tried}: retry the deploy later, make fewer calls at once (a lower concurrency on the provider's builder), or allow more attempts and time with RetryPolicy::max_attempts and RetryPolicy::deadline{status}"
        )
    } else {
        format!(
            "{tried}: retry the deploy later, or allow more attempts and time with RetryPolicy::max_attempts, RetryPolicy::attempt_timeout and RetryPolicy::deadline{status}"
        )
    }
}

/// A duration for people: `300 ms`, `1.5 s`, `20 s`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 1000 {
            write!(f, "{ms} ms")
        } else if ms.is_multiple_of(1000) {
            write!(f, "{} s", ms / 1000)
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{Cloud, Error, ErrorKind};

    fn throttled() -> Error {
        Error::cloud(ErrorKind::Throttled, Cloud::Aws, "GetRole", "Rate exceeded")
    }

    async fn failing_n(policy: &RetryPolicy, n: u32, err: fn() -> Error) -> (Result<u32>, u32) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let r = policy
            .run(Cloud::Aws, "op", || {
                let c = c.clone();
                async move {
                    let k = c.fetch_add(1, Ordering::SeqCst) + 1;
                    if k <= n { Err(err()) } else { Ok(k) }
                }
            })
            .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_until_success() {
        let p = RetryPolicy::default().jitter_seed(7);
        let (r, calls) = failing_n(&p, 3, throttled).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_max_attempts_with_last_error() {
        let p = RetryPolicy::default().max_attempts(3).jitter_seed(1);
        let (r, calls) = failing_n(&p, 10, throttled).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Throttled);
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_non_retryable() {
        let p = RetryPolicy::default();
        let (r, calls) = failing_n(&p, 10, || {
            Error::cloud(ErrorKind::NotFound, Cloud::Aws, "GetRole", "no such role")
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_conflict_marked_retryable() {
        let p = RetryPolicy::default().jitter_seed(3);
        let (r, calls) = failing_n(&p, 2, || {
            Error::cloud(ErrorKind::Conflict, Cloud::Azure, "Put", "concurrent").retryable(true)
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_contended_write_waits_for_the_other_writer_until_the_deadline() {
        let busy = || {
            Error::cloud(
                ErrorKind::Conflict,
                Cloud::Azure,
                "Put",
                "concurrent writes",
            )
            .retryable(true)
        };
        // Busy for 20 attempts: more than max_attempts, well within the deadline.
        let p = RetryPolicy::default().jitter_seed(11);
        let start = Instant::now();
        let (r, calls) = failing_n(&p, 20, busy).await;
        assert_eq!(r.unwrap(), 21);
        assert_eq!(calls, 21);
        let took = start.elapsed();
        // Delays of 200 ms to 2 s each: the backoff reaches the time a write takes.
        assert!(took >= Duration::from_millis(200 * 20), "{took:?}");
        assert!(took <= Duration::from_secs(2 * 20), "{took:?}");

        // Busy past the deadline: a clear error counting the attempts, with its fix.
        let p = p.deadline(Duration::from_secs(10));
        let (r, calls) = failing_n(&p, u32::MAX, busy).await;
        let err = r.unwrap_err();
        assert!(calls > 6, "{calls}");
        let fix = err.fix().unwrap();
        assert!(fix.contains(&format!("tried {calls} times")), "{fix}");
        assert!(fix.contains("another writer"), "{fix}");

        // Throttling keeps its max_attempts; a policy without retries retries nothing.
        let (_, calls) = failing_n(&RetryPolicy::default().jitter_seed(1), 20, throttled).await;
        assert_eq!(calls, 6);
        let (_, calls) = failing_n(&RetryPolicy::none(), 20, busy).await;
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_are_jittered_within_ceiling_and_deterministic() {
        let p = RetryPolicy::default()
            .max_attempts(6)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(1000))
            .deadline(Duration::from_secs(3600))
            .jitter_seed(42);
        let measure = || async {
            let start = Instant::now();
            let _ = failing_n(&p, 5, throttled).await;
            start.elapsed()
        };
        let first = measure().await;
        let second = measure().await;
        // same seed, same delays, to the nanosecond (time is paused and advanced exactly)
        assert_eq!(first, second);
        // ceilings 100+200+400+800+1000 ms
        assert!(first <= Duration::from_millis(2500), "{first:?}");
        assert!(first > Duration::ZERO);
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(4), Duration::from_millis(800));
        assert_eq!(p.backoff_ceiling(5), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(60), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_bounds_total_time() {
        let p = RetryPolicy::default()
            .max_attempts(1000)
            .initial_backoff(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(1))
            .deadline(Duration::from_secs(5))
            .jitter_seed(9);
        let start = Instant::now();
        let (r, calls) = failing_n(&p, u32::MAX, throttled).await;
        assert!(r.is_err());
        assert!(
            start.elapsed() <= Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(calls > 2 && calls < 1000, "{calls}");
    }

    /// A call that never answers on the attempts listed in `stall`, and succeeds otherwise.
    async fn stalling(policy: &RetryPolicy, stall: &[u32]) -> (Result<u32>, u32, Duration) {
        let calls = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let c = calls.clone();
        let r = policy
            .run(Cloud::Aws, "DescribeCluster", || {
                let c = c.clone();
                let stall = stall.to_vec();
                async move {
                    let k = c.fetch_add(1, Ordering::SeqCst) + 1;
                    if stall.contains(&k) {
                        std::future::pending::<()>().await;
                    }
                    Ok(k)
                }
            })
            .await;
        (r, calls.load(Ordering::SeqCst), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_attempt_is_timed_out_and_retried_with_twice_the_time() {
        let p = RetryPolicy::default()
            .attempt_timeout(Duration::from_secs(2))
            .jitter_seed(4);
        let (r, calls, took) = stalling(&p, &[1, 2]).await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(calls, 3);
        // timeouts of 2 s then 4 s, plus two jittered delays of at most 200 + 400 ms
        assert!(took >= Duration::from_secs(6), "{took:?}");
        assert!(took <= Duration::from_millis(6600), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_defaults_cut_a_stall_at_5_s_and_give_a_slow_cloud_up_to_20_s() {
        let p = RetryPolicy::default().jitter_seed(4);
        assert_eq!(p.get_attempt_timeout(), Duration::from_secs(5));
        assert_eq!(p.get_max_attempt_timeout(), Duration::from_secs(20));
        // One stall: 5 s lost, not 20.
        let (r, calls, took) = stalling(&p, &[1]).await;
        assert_eq!((r.unwrap(), calls), (2, 2));
        assert!(took < Duration::from_millis(5300), "{took:?}");
        // Three stalls in a row: 5 + 10 + 20 s, the last capped.
        let p = p.max_attempts(10).deadline(Duration::from_secs(600));
        let (r, _, took) = stalling(&p, &[1, 2, 3, 4]).await;
        assert_eq!(r.unwrap(), 5);
        let waited = Duration::from_secs(5 + 10 + 20 + 20);
        assert!(took >= waited, "{took:?}");
        assert!(took <= waited + Duration::from_secs(4), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_a_call_in_flight() {
        let p = RetryPolicy::default()
            .attempt_timeout(Duration::from_secs(20))
            .deadline(Duration::from_secs(5))
            .jitter_seed(4);
        let (r, calls, took) = stalling(&p, &[1]).await;
        let err = r.unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(
            took,
            Duration::from_secs(5),
            "the deadline, not the 20 s attempt timeout"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_retryable());
        assert!(err.to_string().contains("deadline of 5 s"), "{err}");
        assert!(
            err.fix().unwrap().contains("RetryPolicy::deadline"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_stalled_ends_by_the_deadline_naming_the_last_failure() {
        let p = RetryPolicy::default()
            .max_attempts(100)
            .attempt_timeout(Duration::from_secs(3))
            .deadline(Duration::from_secs(10))
            .jitter_seed(8);
        let (r, calls, took) = stalling(&p, &(1..=100).collect::<Vec<_>>()).await;
        let err = r.unwrap_err();
        assert!(took <= Duration::from_secs(10), "{took:?}");
        assert!((3..=4).contains(&calls), "{calls}");
        assert!(err.to_string().contains("per-attempt timeout"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_on_a_transient_error_says_what_to_do() {
        let p = RetryPolicy::default().max_attempts(3).jitter_seed(1);
        let unavailable = || {
            Error::cloud(
                ErrorKind::Unavailable,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                "HTTP 503",
            )
        };
        let (r, _) = failing_n(&p, 10, unavailable).await;
        let err = r.unwrap_err();
        let fix = err
            .fix()
            .expect("an Unavailable error that outlived its retries has a fix");
        assert!(fix.contains("tried 3 times"), "{fix}");
        assert!(fix.contains("retry the deploy later"), "{fix}");
        assert!(fix.contains("health.aws.amazon.com"), "{fix}");

        let (r, _) = failing_n(&p, 10, throttled).await;
        let fix = r.unwrap_err().fix().unwrap().to_owned();
        assert!(fix.contains("fewer calls at once"), "{fix}");

        // A fix the error already has is kept, not replaced.
        let (r, _) = failing_n(&p, 10, || {
            Error::cloud(
                ErrorKind::Unavailable,
                Cloud::Aws,
                "GetRole",
                "connection refused",
            )
            .with_fix("check the proxy")
        })
        .await;
        assert_eq!(r.unwrap_err().fix(), Some("check the proxy"));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_within_the_deadline() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(10))
            .jitter_seed(2);
        let start = Instant::now();
        let (r, calls) = failing_n(&p, 1, || {
            throttled().with_retry_after(Duration::from_secs(7))
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls, 2);
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );

        // A Retry-After past the deadline ends the retries at once.
        let p = p.deadline(Duration::from_secs(5));
        let start = Instant::now();
        let (r, calls) = failing_n(&p, 1, || {
            throttled().with_retry_after(Duration::from_secs(30))
        })
        .await;
        let err = r.unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(Secs(Duration::from_millis(300)).to_string(), "300 ms");
        assert_eq!(Secs(Duration::from_secs(20)).to_string(), "20 s");
        assert_eq!(Secs(Duration::from_millis(1500)).to_string(), "1.5 s");
    }

    #[tokio::test(start_paused = true)]
    async fn none_makes_one_call() {
        let (r, calls) = failing_n(&RetryPolicy::none(), 1, throttled).await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cycle_is_retried_whole_and_stops_on_its_own_final_error() {
        let policy = RetryPolicy::default().jitter_seed(3);
        let tries = AtomicU32::new(0);
        let r = policy
            .run_cycle(Cloud::Gcp, "setIamPolicy", || {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 | 1 => Err(Error::cloud(
                            ErrorKind::Conflict,
                            Cloud::Gcp,
                            "setIamPolicy",
                            "stale etag",
                        )
                        .retryable(true)),
                        _ => Ok(Err::<u32, _>(throttled())),
                    }
                }
            })
            .await;
        assert_eq!(
            tries.load(Ordering::SeqCst),
            3,
            "two stale cycles, then a final error"
        );
        assert_eq!(
            r.expect_err("final").kind(),
            ErrorKind::Throttled,
            "the cycle's own error, not retried again"
        );
    }
}
