//! One failure, one budget: the failure streak of one cloud endpoint within one run.
//!
//! The chains of calls a provider runs side by side for one operation (a namespace's listing
//! beside the cluster read, an identity's credentials beside the cluster's issuer) each have
//! their own retry loop. Against an endpoint that is down, each loop would spend the whole
//! `max_attempts` on its own: two joined chains, twice the calls. The streak makes them share
//! one budget: it counts the attempts of the endpoint that failed in a row in this run (5xx, no
//! answer in time), and
//!
//! - while it is below `max_attempts`, lets a retry (or a new call) start only while the
//!   failures plus the attempts already in flight on that budget stay below `max_attempts`, so
//!   that the attempts in all never exceed it;
//! - once it reaches `max_attempts`, the endpoint is taken as down for this run: calls waiting to retry stop and report their last
//!   error, and new calls go one at a time, each tried once, until one succeeds;
//! - but a burst of first attempts that failed together (more calls than one operation joins,
//!   in flight when the endpoint blipped) reaches `max_attempts` without proving it down: their retries go one at a time,
//!   each after its backoff, and the first that succeeds ends the streak; it is proven down
//!   only when half of `max_attempts` of those retries have failed too. So a blip of a second or so costs a
//!   pause, not the deploy.
//!
//! Any answer that is not an outage ends the streak: a success, a 4xx, throttling (the endpoint
//! is up and asks to slow down: backoff and `Retry-After` handle that, call by call). An outage
//! counts only when its attempt was sent after the endpoint's last answer: a call that stalled
//! for seconds while others were answered says nothing new (the endpoint is up), so a few
//! stalled calls timing out together do not make a streak. While the
//! endpoint is healthy (no failure in a row) new calls start freely, up to the provider's gate.

use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::{Error, ErrorKind};

/// The most chains of calls a provider joins for one operation (an Azure bind group reads the
/// cluster, the identity and its credentials side by side): a streak with no more first
/// attempts than this is one operation's, and its budget is spent at `max_attempts`.
const JOINED: u32 = 3;

/// The failure streak of one endpoint of one provider in one run.
#[derive(Debug)]
pub(crate) struct Streak {
    /// The failures in a row at which the endpoint is taken as down: the policy's
    /// `max_attempts`.
    limit: u32,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Attempts that failed in a row with an outage.
    failures: u32,
    /// Attempts in flight that hold a place in the budget.
    reserved: u32,
    /// The retries among the failures: what tells an endpoint that is down from a burst of
    /// calls that failed together.
    retry_failures: u32,
    /// How many answers ended a streak so far: an attempt sent before the last of them is
    /// no evidence of an outage now.
    answers: u64,
}

/// What an attempt's answer says of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It is down or not answering: a retryable 5xx, a connection failure, a timeout.
    Outage,
    /// It answered: a success, a refusal, throttling.
    Up,
}

impl Answer {
    pub(crate) fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Err(e) if e.kind() == ErrorKind::Unavailable && e.is_retryable() => Answer::Outage,
            _ => Answer::Up,
        }
    }
}

/// A place to make one attempt; it gives the place back when dropped, answered or not (an
/// attempt dropped because its operation stopped).
#[derive(Debug)]
pub(crate) struct Ticket<'s> {
    streak: &'s Streak,
    reserved: bool,
    retry: bool,
    /// The streak's `answers` when the attempt was sent.
    sent_after: u64,
}

impl Streak {
    pub(crate) fn new(limit: u32) -> Self {
        Streak {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// The failures in a row at which the endpoint is taken as down.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Whether the endpoint is taken as down in this run.
    #[cfg(test)]
    pub(crate) fn is_down(&self) -> bool {
        self.lock().is_down(self.limit)
    }

    /// Waits for a place to make an attempt: the first attempt of a call (`retry` false) or a
    /// retry. `None`: a retry of an endpoint taken as down, which must stop.
    pub(crate) async fn admit(&self, retry: bool) -> Option<Ticket<'_>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so a change in between is not missed.
            changed.as_mut().enable();
            {
                let mut s = self.lock();
                let room = if s.failures == 0 && !retry {
                    return Some(Ticket {
                        streak: self,
                        reserved: false,
                        retry,
                        sent_after: s.answers,
                    });
                } else if s.failures < self.limit {
                    s.failures + s.reserved < self.limit
                } else if retry && s.is_down(self.limit) {
                    return None;
                } else {
                    // Down, or a burst not yet proven down: one attempt at a time finds out
                    // whether it is back.
                    s.reserved == 0
                };
                if room {
                    s.reserved += 1;
                    return Some(Ticket {
                        streak: self,
                        reserved: true,
                        retry,
                        sent_after: s.answers,
                    });
                }
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// `max_attempts` failures in a row, with at most [`JOINED`] first attempts among them
    /// (the chains of one operation, sharing the budget), or else with half of them retries
    /// (a burst of separate calls whose retries failed too).
    fn is_down(&self, limit: u32) -> bool {
        let firsts = self.failures.saturating_sub(self.retry_failures);
        self.failures >= limit
            && (firsts <= JOINED || self.retry_failures.saturating_mul(2) >= limit)
    }
}

impl Ticket<'_> {
    /// Whether the endpoint answered another call since this attempt was sent: then a stall of
    /// this one is its own lost request or connection, not a slow endpoint.
    pub(crate) fn others_answered(&self) -> bool {
        self.sent_after != self.streak.lock().answers
    }

    /// Records what the attempt's answer says of the endpoint.
    pub(crate) fn answered(self, answer: Answer) {
        let mut s = self.streak.lock();
        match answer {
            // Sent before the endpoint's last answer: old news.
            Answer::Outage if self.sent_after != s.answers => {}
            Answer::Outage => {
                s.failures = s.failures.saturating_add(1);
                if self.retry {
                    s.retry_failures = s.retry_failures.saturating_add(1);
                }
            }
            Answer::Up => {
                s.failures = 0;
                s.retry_failures = 0;
                s.answers = s.answers.wrapping_add(1);
            }
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.reserved {
            let mut s = self.streak.lock();
            s.reserved = s.reserved.saturating_sub(1);
        }
        self.streak.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_healthy_endpoint_admits_first_attempts_freely() {
        let s = Streak::new(2);
        let tickets: Vec<_> = futures_util::future::join_all((0..10).map(|_| s.admit(false)))
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(tickets.len(), 10);
        assert!(tickets.iter().all(|t| !t.reserved));
    }

    #[tokio::test]
    async fn retries_share_one_budget_and_stop_once_it_is_spent() {
        let s = Streak::new(4);
        let a = s.admit(false).await.unwrap();
        let b = s.admit(false).await.unwrap();
        a.answered(Answer::Outage);
        b.answered(Answer::Outage);
        // Two failed: two more attempts fit in a budget of four.
        let c = s.admit(true).await.unwrap();
        let d = s.admit(true).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), s.admit(true)).await;
        assert!(
            waiting.is_err(),
            "a fifth attempt must wait for the others' answers"
        );
        c.answered(Answer::Outage);
        d.answered(Answer::Outage);
        assert!(s.is_down());
        assert!(
            s.admit(true).await.is_none(),
            "retries stop once it is down"
        );
        // New calls go one at a time; a success ends the streak.
        let probe = s.admit(false).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(50), s.admit(false)).await;
        assert!(second.is_err(), "one new call at a time while down");
        probe.answered(Answer::Up);
        assert!(!s.is_down());
        assert!(s.admit(true).await.is_some());
    }

    #[tokio::test]
    async fn a_burst_of_first_attempts_gets_one_retry_to_show_it_passed() {
        let s = Streak::new(3);
        let burst: Vec<_> = futures_util::future::join_all((0..8).map(|_| s.admit(false)))
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        for t in burst {
            t.answered(Answer::Outage);
        }
        assert!(!s.is_down(), "eight calls failed together: not proven down");
        let probe = s.admit(true).await.expect("one retry finds out");
        let second = tokio::time::timeout(Duration::from_millis(50), s.admit(true)).await;
        assert!(second.is_err(), "one at a time");
        probe.answered(Answer::Up);
        assert!(s.admit(true).await.is_some(), "back: retries flow again");

        let s = Streak::new(3);
        for t in futures_util::future::join_all((0..8).map(|_| s.admit(false))).await {
            t.unwrap().answered(Answer::Outage);
        }
        s.admit(true).await.unwrap().answered(Answer::Outage);
        assert!(!s.is_down(), "one failed retry of three attempts: not yet");
        s.admit(true).await.unwrap().answered(Answer::Outage);
        assert!(s.is_down(), "two retries failed too");
        assert!(s.admit(true).await.is_none());
    }

    #[tokio::test]
    async fn an_attempt_sent_before_the_last_answer_is_no_evidence() {
        let s = Streak::new(2);
        let stalled: Vec<_> = futures_util::future::join_all((0..3).map(|_| s.admit(false)))
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        s.admit(false).await.unwrap().answered(Answer::Up);
        for t in stalled {
            t.answered(Answer::Outage);
        }
        let t = s.admit(false).await.unwrap();
        assert!(
            !t.reserved,
            "no streak: the endpoint answered since they were sent"
        );
    }

    #[tokio::test]
    async fn a_dropped_attempt_gives_its_place_back() {
        let s = Streak::new(2);
        s.admit(false).await.unwrap().answered(Answer::Outage);
        let t = s.admit(true).await.unwrap();
        let waiter = s.admit(true);
        drop(t);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiter)
                .await
                .unwrap()
                .is_some()
        );
    }
}
