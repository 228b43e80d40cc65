//! Leader election through a `coordination.k8s.io/v1` Lease, with client-go's rules.
//!
//! kube-rs 5 has no leader election of its own, and the maintained crates that do
//! (`kube-leader-election`, `kube-lease-manager`) are built on older kube-rs releases whose
//! types are not kube 5's; a second kube-rs in the build would double its compile time. The
//! election is small, so it is here, on `Api<Lease>`:
//! - a candidate takes the lease when nobody holds it, or when the record (holder, renew time,
//!   resource version) has not changed for the lease's duration **by the candidate's own
//!   clock** (as client-go does: no trust in another node's clock);
//! - every write is a replace carrying the resource version read: of two candidates racing,
//!   the API server lets one through and answers the other 409;
//! - the leader renews every retry period; when it has not renewed within the renew deadline
//!   (shorter than the duration) it stops leading *before* another candidate may take over;
//! - a leader that shuts down releases the lease, so another takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// The election's timing, as client-go names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease holds without renewal (default 15 s).
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading (default 10 s; must be
    /// shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews (default 2 s).
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    /// The timing for a lease of `duration`: renew deadline two thirds of it, retry period
    /// two fifteenths (client-go's 15/10/2 s, scaled).
    ///
    /// ```
    /// use std::time::Duration;
    /// use porter_identity_controller::lease::LeaseTiming;
    ///
    /// let t = LeaseTiming::for_duration(Duration::from_secs(15));
    /// assert_eq!(t, LeaseTiming::default());
    /// ```
    pub fn for_duration(duration: Duration) -> Self {
        LeaseTiming {
            duration,
            renew_deadline: duration * 2 / 3,
            retry_period: duration * 2 / 15,
        }
    }
}

/// What the candidate last saw of the lease, and when (by its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<Timestamp>,
    version: Option<String>,
}

/// One replica's side of the election on one Lease.
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    timing: LeaseTiming,
    observed: Option<(Observed, Instant)>,
}

/// A failed read or write of the Lease (not a lost race: that is `Ok(false)`).
pub type LeaseError = kube::Error;

impl LeaseLock {
    /// The lock of Lease `name` (in `api`'s namespace), for the replica `holder` (its pod name).
    pub fn new(api: Api<Lease>, name: &str, holder: &str, timing: LeaseTiming) -> Self {
        LeaseLock {
            api,
            name: name.to_owned(),
            holder: holder.to_owned(),
            timing,
            observed: None,
        }
    }

    /// This replica's identity in the Lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The timing.
    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// One try: takes the lease when it is free or expired, renews it when held. `Ok(true)`
    /// when this replica holds it after the call.
    ///
    /// # Errors
    /// When the API server cannot be read or written (not when another replica won a race).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = Observed {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew: spec.renew_time.as_ref().map(|t| t.0),
            version: lease.metadata.resource_version.clone(),
        };
        let local = Instant::now();
        let since = match &self.observed {
            Some((before, at)) if *before == seen => *at,
            _ => {
                self.observed = Some((seen.clone(), local));
                local
            }
        };
        let ours = seen.holder.as_deref() == Some(self.holder.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.duration, Duration::from_secs);
        let expired = local.saturating_duration_since(since) >= duration;
        if !ours && seen.holder.is_some() && !expired {
            return Ok(false);
        }
        let (acquired, transitions) = if ours {
            (
                spec.acquire_time.map_or(now, |t| t.0),
                spec.lease_transitions.unwrap_or(0),
            )
        } else {
            (now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        let mut next = lease;
        next.spec = Some(self.spec(acquired, now, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                let spec = written.spec.unwrap_or_default();
                self.observed = Some((
                    Observed {
                        holder: spec.holder_identity,
                        renew: spec.renew_time.map(|t| t.0),
                        version: written.metadata.resource_version,
                    },
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up when this replica holds it: another candidate takes it at its next
    /// try instead of waiting for it to expire.
    ///
    /// # Errors
    /// When the API server cannot be read or written.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// 409: the lease was written by someone else since it was read (or created meanwhile).
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
