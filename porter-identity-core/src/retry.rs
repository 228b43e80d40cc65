//! `RetryPolicy`: exponential backoff with full jitter, bounded by attempts and a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::Result;

/// How a provider retries a cloud call that failed with a retryable error
/// ([`Error::is_retryable`](crate::Error::is_retryable): throttling, transient failures, and
/// cloud-specific conflicts a retry resolves).
///
/// Delay before retry *n* (1-based) is a uniformly random duration in
/// `[0, min(max_backoff, initial_backoff × 2^(n-1))]` ("full jitter"), so that many
/// deploy processes throttled together do not retry in lockstep. Retrying stops after
/// `max_attempts` calls, or when the next delay would pass the total `deadline`; the last
/// error is returned. Non-retryable errors are returned at once.
///
/// ```
/// use std::time::Duration;
/// use porter_identity_core::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(8)
///     .initial_backoff(Duration::from_millis(100))
///     .deadline(Duration::from_secs(30));
/// assert_eq!(policy.get_max_attempts(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    deadline: Duration,
    seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// 6 attempts, 200 ms initial backoff, 10 s maximum backoff, 60 s in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            seed: None,
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is made once.
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

    /// The total time retries may take, from the first call.
    #[must_use]
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
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

    /// The upper bound of the delay before retry `retry` (1-based), before jitter.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Runs `call` until it succeeds, fails with a non-retryable error, or the attempts or
    /// the deadline run out. `operation` names the call in the retry log lines.
    pub async fn run<T, F, Fut>(&self, operation: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut rng = match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let mut attempt = 1;
        loop {
            let err = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.max_attempts {
                return Err(err);
            }
            let ceiling = self.backoff_ceiling(attempt);
            let delay = Duration::from_nanos(
                rng.u64(0..=u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX)),
            );
            if started.elapsed() + delay > self.deadline {
                tracing::warn!(operation, attempt, error = %err, "retry deadline reached");
                return Err(err);
            }
            tracing::debug!(
                operation,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
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
            .run("op", || {
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

    #[tokio::test(start_paused = true)]
    async fn none_makes_one_call() {
        let (r, calls) = failing_n(&RetryPolicy::none(), 1, throttled).await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
