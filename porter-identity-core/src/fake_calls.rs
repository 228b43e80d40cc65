//! `FakeCalls`: what every provider's fake cloud does with the calls made to it, whatever the
//! cloud — count them by operation, fail the ones a test asked to fail, and delay them
//! (latency, and now and then a stall). One piece, so that every fake's knobs mean the same.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ErrorKind;

/// A failure a test asked for.
#[derive(Debug, Clone)]
struct Injection {
    op: Option<String>,
    kind: ErrorKind,
    remaining: u32,
}

/// The calls of a fake cloud: counters by operation, injected failures, latency and stalls.
///
/// A fake holds one inside its state and, for each call, runs [`begin`](Self::begin) (count
/// it, maybe fail it) and sleeps [`delay`](Self::delay) with its lock released.
///
/// ```
/// use std::time::Duration;
/// use porter_identity_core::ErrorKind;
/// use porter_identity_core::testing::FakeCalls;
///
/// let mut calls = FakeCalls::new("FakeCloud", &["Get", "Put"]);
/// calls.inject(Some("Put"), ErrorKind::Throttled, 1);
/// calls.stall_every(2, Duration::from_secs(60));
/// assert_eq!(calls.begin("Put"), Err(ErrorKind::Throttled));
/// assert_eq!(calls.delay(), Duration::ZERO);
/// assert_eq!(calls.begin("Put"), Ok(()));
/// assert_eq!(calls.delay(), Duration::from_secs(60), "the second call stalls");
/// assert_eq!(calls.count("Put"), 2, "failed calls count too");
/// assert_eq!(calls.sum(&["Get", "Put"]), 2);
/// ```
#[derive(Debug)]
pub struct FakeCalls {
    fake: &'static str,
    operations: &'static [&'static str],
    counts: BTreeMap<String, u64>,
    injections: Vec<Injection>,
    latency: Duration,
    /// Every `.0`-th call answers only after `.1` more.
    stall: Option<(u64, Duration)>,
    /// Calls so far, all operations together, for the stall.
    number: u64,
}

impl FakeCalls {
    /// The calls of fake `fake` (its type name, for messages), whose operations are
    /// `operations`.
    pub fn new(fake: &'static str, operations: &'static [&'static str]) -> Self {
        FakeCalls {
            fake,
            operations,
            counts: BTreeMap::new(),
            injections: Vec::new(),
            latency: Duration::ZERO,
            stall: None,
            number: 0,
        }
    }

    /// Counts a call of `op`; `Err(kind)` when a test asked for this call to fail.
    pub fn begin(&mut self, op: &str) -> Result<(), ErrorKind> {
        *self.counts.entry(op.to_owned()).or_default() += 1;
        self.number += 1;
        let hit = self
            .injections
            .iter_mut()
            .find(|i| i.remaining > 0 && i.op.as_deref().is_none_or(|o| o == op));
        match hit {
            Some(injection) => {
                injection.remaining -= 1;
                let kind = injection.kind;
                self.injections.retain(|i| i.remaining > 0);
                Err(kind)
            }
            None => Ok(()),
        }
    }

    /// How long the call just begun waits before it answers: the latency, and the stall when
    /// this call is one of those that stall.
    pub fn delay(&self) -> Duration {
        match self.stall {
            Some((every, stall)) if every > 0 && self.number.is_multiple_of(every) => {
                self.latency + stall
            }
            _ => self.latency,
        }
    }

    /// The latency every call gets.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Sets the latency every call gets.
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Makes every `every`-th call (`0` turns it off) answer only after `stall` more.
    pub fn stall_every(&mut self, every: u64, stall: Duration) {
        self.stall = (every > 0).then_some((every, stall));
    }

    /// Makes the next `count` calls of `op` (`None`: of any operation) fail with `kind`.
    ///
    /// # Panics
    /// If `op` is not one of the fake's operations, so that a typo cannot make a test vacuous.
    pub fn inject(&mut self, op: Option<&str>, kind: ErrorKind, count: u32) {
        if let Some(op) = op {
            assert!(
                self.operations.contains(&op),
                "{}::inject_failures: unknown operation `{op}`; expected one of {:?}",
                self.fake,
                self.operations
            );
        }
        if count > 0 {
            self.injections.push(Injection {
                op: op.map(str::to_owned),
                kind,
                remaining: count,
            });
        }
    }

    /// The calls so far, by operation (failed ones included).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }

    /// The calls of one operation so far.
    pub fn count(&self, op: &str) -> u64 {
        self.counts.get(op).copied().unwrap_or(0)
    }

    /// The calls of all of `ops` so far.
    pub fn sum(&self, ops: &[&str]) -> u64 {
        ops.iter().map(|op| self.count(op)).sum()
    }

    /// Forgets the calls counted so far (failures asked for, latency and stalls stay).
    pub fn reset(&mut self) {
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_injection_for_any_operation_is_used_up_in_order() {
        let mut calls = FakeCalls::new("FakeCloud", &["Get", "Put"]);
        calls.inject(None, ErrorKind::Unavailable, 2);
        calls.inject(Some("Get"), ErrorKind::NotFound, 1);
        assert_eq!(calls.begin("Get"), Err(ErrorKind::Unavailable));
        assert_eq!(calls.begin("Put"), Err(ErrorKind::Unavailable));
        assert_eq!(calls.begin("Put"), Ok(()));
        assert_eq!(calls.begin("Get"), Err(ErrorKind::NotFound));
        assert_eq!(calls.begin("Get"), Ok(()));
        calls.reset();
        assert!(calls.counts().is_empty());
    }

    #[test]
    #[should_panic(expected = "FakeCloud::inject_failures: unknown operation `Gett`")]
    fn an_unknown_operation_is_a_test_bug() {
        FakeCalls::new("FakeCloud", &["Get"]).inject(Some("Gett"), ErrorKind::Throttled, 1);
    }

    #[test]
    fn latency_and_stalls_add_up() {
        let mut calls = FakeCalls::new("FakeCloud", &["Get"]);
        calls.set_latency(Duration::from_millis(10));
        calls.stall_every(3, Duration::from_secs(1));
        let delays: Vec<Duration> = (0..3)
            .map(|_| {
                calls.begin("Get").unwrap();
                calls.delay()
            })
            .collect();
        assert_eq!(
            delays,
            [
                Duration::from_millis(10),
                Duration::from_millis(10),
                Duration::from_millis(1010)
            ]
        );
        calls.stall_every(0, Duration::from_secs(1));
        calls.begin("Get").unwrap();
        calls.begin("Get").unwrap();
        assert_eq!(calls.delay(), calls.latency());
    }
}
