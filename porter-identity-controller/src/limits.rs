//! Per-cloud rate limits: a token bucket per cloud, holding the total cost of reconciles and
//! resyncs under what the cloud's API takes.
//!
//! A reconcile cannot know its cost in cloud calls before it runs (one GetRole or a thousand
//! associations), so the bucket works by reservation and debt: a reconcile that touches a cloud
//! waits for one token of it and takes it, runs, then is charged the rest of the calls it made
//! (the report counts them, retries included). The bucket may go below zero; the next
//! reconciles on that cloud then wait until it has refilled. Over any stretch longer than a
//! reconcile the calls per second stay at the rate; a burst is at most the bucket's size plus
//! what the reconciles running at that moment make.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use porter_identity_core::{CallCounts, Cloud};
use tokio::time::Instant;

/// One cloud's limit: calls per second, and how many may go at once after a quiet time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Calls per second, refilled continuously.
    pub per_second: f64,
    /// The bucket's size.
    pub burst: f64,
}

impl RateLimit {
    /// The default of `cloud`, below each cloud's documented API limits:
    /// - AWS: 10 calls/s, burst 20. AWS publishes no per-operation rate for IAM's reads or
    ///   EKS's Pod Identity operations; both throttle well above this;
    /// - Azure: 8 calls/s, burst 40. Azure Resource Manager refills a subscription's write
    ///   bucket at 10 a second (reads at 25);
    /// - GCP: 5 calls/s, burst 20. The IAM API's default quota is 600 writes a minute per
    ///   project (10 a second).
    ///
    /// ```
    /// use porter_identity_controller::limits::RateLimit;
    /// use porter_identity_core::Cloud;
    ///
    /// assert_eq!(RateLimit::default_for(Cloud::Gcp).per_second, 5.0);
    /// ```
    pub fn default_for(cloud: Cloud) -> Self {
        let (per_second, burst) = match cloud {
            Cloud::Aws => (10.0, 20.0),
            Cloud::Azure => (8.0, 40.0),
            _ => (5.0, 20.0),
        };
        RateLimit { per_second, burst }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s, burst {}", self.per_second, self.burst)
    }
}

/// `CLOUD=RATE[/BURST]`, as `--rate-limit aws=10/20` takes it (the burst defaults to twice the
/// rate).
///
/// ```
/// use porter_identity_controller::limits::CloudRateLimit;
/// use porter_identity_core::Cloud;
///
/// let l: CloudRateLimit = "azure=4/10".parse().unwrap();
/// assert_eq!((l.cloud, l.limit.per_second, l.limit.burst), (Cloud::Azure, 4.0, 10.0));
/// assert!("aws=0".parse::<CloudRateLimit>().unwrap_err().contains("greater than 0"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloudRateLimit {
    /// The cloud.
    pub cloud: Cloud,
    /// Its limit.
    pub limit: RateLimit,
}

impl FromStr for CloudRateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "give CLOUD=RATE[/BURST], e.g. aws=10/20 (calls per second, bucket size)";
        let (cloud, value) = s
            .split_once('=')
            .ok_or_else(|| format!("rate limit {s:?}: {usage}"))?;
        let cloud = match cloud.trim() {
            "aws" => Cloud::Aws,
            "azure" => Cloud::Azure,
            "gcp" => Cloud::Gcp,
            other => {
                return Err(format!(
                    "rate limit {s:?}: unknown cloud {other:?}; the clouds are aws, azure, gcp"
                ));
            }
        };
        let (rate, burst) = match value.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (value, None),
        };
        let number = |text: &str, what: &str| -> Result<f64, String> {
            match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
                _ => Err(format!(
                    "rate limit {s:?}: the {what} must be a number greater than 0; {usage}"
                )),
            }
        };
        let per_second = number(rate, "rate")?;
        let burst = match burst {
            Some(b) => number(b, "burst")?.max(1.0),
            None => (per_second * 2.0).max(1.0),
        };
        Ok(CloudRateLimit {
            cloud,
            limit: RateLimit { per_second, burst },
        })
    }
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        self.last = now;
    }
}

/// The token buckets of every cloud. Shared by every reconcile of the controller.
#[derive(Debug)]
pub struct RateLimits {
    buckets: BTreeMap<Cloud, Mutex<Bucket>>,
}

impl RateLimits {
    /// The default limit of every cloud, with `overrides` in its place where given.
    pub fn new(overrides: &[CloudRateLimit]) -> Self {
        let now = Instant::now();
        let buckets = [Cloud::Aws, Cloud::Azure, Cloud::Gcp]
            .into_iter()
            .map(|cloud| {
                let limit = overrides
                    .iter()
                    .rev()
                    .find(|o| o.cloud == cloud)
                    .map_or_else(|| RateLimit::default_for(cloud), |o| o.limit);
                let bucket = Bucket {
                    limit,
                    tokens: limit.burst,
                    last: now,
                };
                (cloud, Mutex::new(bucket))
            })
            .collect();
        RateLimits { buckets }
    }

    /// The limit of `cloud`.
    pub fn limit(&self, cloud: Cloud) -> Option<RateLimit> {
        self.buckets.get(&cloud).map(|b| lock(b).limit)
    }

    /// Waits until `cloud`'s bucket holds a token, and takes it.
    pub async fn acquire(&self, cloud: Cloud) {
        let Some(bucket) = self.buckets.get(&cloud) else {
            return;
        };
        loop {
            let wait = {
                let mut b = lock(bucket);
                b.refill(Instant::now());
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / b.limit.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Charges what a reconcile made beyond the tokens it took: `calls` of each cloud, less
    /// the one token it took of each cloud in `taken`.
    pub fn charge(&self, calls: &CallCounts, taken: &[Cloud]) {
        for cloud in self.buckets.keys() {
            let made: u64 = calls.of(*cloud).values().sum();
            let owed = made.saturating_sub(u64::from(taken.contains(cloud)));
            self.charge_calls(*cloud, owed);
        }
    }

    /// Takes `calls` tokens of `cloud` at once, into debt if need be.
    pub fn charge_calls(&self, cloud: Cloud, calls: u64) {
        if calls == 0 {
            return;
        }
        if let Some(bucket) = self.buckets.get(&cloud) {
            let mut b = lock(bucket);
            b.refill(Instant::now());
            // A reconcile's calls are far below 2^53: f64 holds them exactly.
            b.tokens -= calls as f64;
        }
    }
}

fn lock(bucket: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    // Only arithmetic runs under the lock: a poisoned one is still sound.
    bucket.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_burst_wait_for_the_refill() {
        let limits = RateLimits::new(&["gcp=2/4".parse().unwrap()]);
        let start = Instant::now();
        for _ in 0..4 {
            limits.acquire(Cloud::Gcp).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
        limits.acquire(Cloud::Gcp).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        // Another cloud's bucket is its own.
        let before = Instant::now();
        limits.acquire(Cloud::Aws).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_made_many_calls_is_charged_and_the_next_waits() {
        let limits = RateLimits::new(&["aws=10/10".parse().unwrap()]);
        limits.acquire(Cloud::Aws).await;
        // The reconcile made 30 calls, one of them on the token it took.
        limits.charge_calls(Cloud::Aws, 29);
        // 10 - 1 - 29 = -20 tokens: the next needs 21, two seconds and a tenth at 10/s.
        let start = Instant::now();
        limits.acquire(Cloud::Aws).await;
        assert_eq!(start.elapsed(), Duration::from_millis(2100));
    }

    #[test]
    fn bad_limits_are_refused_with_the_form() {
        for bad in ["aws", "moon=1", "aws=-1", "aws=1/0", "aws=x"] {
            let e = bad.parse::<CloudRateLimit>().unwrap_err();
            assert!(
                e.contains("CLOUD=RATE[/BURST]") || e.contains("aws, azure, gcp"),
                "{e}"
            );
        }
        assert_eq!("aws=3".parse::<CloudRateLimit>().unwrap().limit.burst, 6.0);
    }
}
