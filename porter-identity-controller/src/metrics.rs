//! The controller's Prometheus metrics (`/metrics`), in the Prometheus project's own Rust
//! client: reconciles by result, their duration, the queue, cloud calls by operation, errors by
//! kind, and whether this replica leads.

use std::sync::Arc;

use porter_identity_core::CallCounts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    cloud: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The metrics, shared by the reconciles and the HTTP server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ResultLabel, Counter>,
    duration: Histogram,
    queue: Gauge,
    calls: Family<CallLabels, Counter>,
    errors: Family<KindLabel, Counter>,
    leader: Gauge,
}

/// How a reconcile ended, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Every link holds.
    Ready,
    /// The object is not ready: a denied link, a cloud or cluster error, a spec that does not
    /// read. Its status says why.
    NotReady,
    /// The reconcile itself failed (the API server, a finalizer write); retried with backoff.
    Error,
    /// The object's links were removed and its finalizer dropped (or orphaned).
    Deleted,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Ready => "ready",
            ReconcileResult::NotReady => "not_ready",
            ReconcileResult::Error => "error",
            ReconcileResult::Deleted => "deleted",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered under `porter_identity_controller_*`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("porter_identity_controller");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of AppIdentity objects, by result (ready, not_ready, error, deleted)",
            reconciles.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took, its rate-limit wait included",
            duration.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "queue_depth",
            "Reconciles started and not finished: waiting for a cloud's rate limit, or running",
            queue.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "cloud_calls",
            "Cloud API calls made by reconciles, by cloud and operation, retries included",
            calls.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "errors",
            "Errors of reconciles, by kind (porter-identity's error kinds, and kube for the API server)",
            errors.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "Whether this replica holds the lease and reconciles (1) or stands by (0)",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            duration,
            queue,
            calls,
            errors,
            leader,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, result: ReconcileResult) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.as_str().to_owned(),
            })
            .inc();
    }

    /// The reconciles counted with `result` so far.
    pub fn reconciles(&self, result: ReconcileResult) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.as_str().to_owned(),
            })
            .get()
    }

    /// Records how long a reconcile took.
    pub fn observe_duration(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    /// Counts the cloud calls a reconcile made.
    pub fn calls(&self, calls: &CallCounts) {
        for (cloud, operation, n) in calls.iter() {
            self.calls
                .get_or_create(&CallLabels {
                    cloud: cloud.as_str().to_owned(),
                    operation: operation.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// One reconcile more in the queue until the guard drops.
    pub fn queued(&self) -> QueueGuard {
        self.queue.inc();
        QueueGuard(self.queue.clone())
    }
}

/// A reconcile counted in `queue_depth` until dropped.
#[derive(Debug)]
pub struct QueueGuard(Gauge);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_each_metric_with_its_labels() {
        let m = Metrics::new();
        m.reconciled(ReconcileResult::Ready);
        m.observe_duration(0.02);
        m.error("Throttled");
        m.set_leader(true);
        let guard = m.queued();
        let text = m.render();
        assert!(
            text.contains("porter_identity_controller_reconciles_total{result=\"ready\"} 1"),
            "{text}"
        );
        assert!(text.contains("porter_identity_controller_errors_total{kind=\"Throttled\"} 1"));
        assert!(
            text.lines()
                .any(|l| l == "porter_identity_controller_leader 1")
        );
        assert!(text.contains("porter_identity_controller_queue_depth 1"));
        drop(guard);
        assert!(
            m.render()
                .contains("porter_identity_controller_queue_depth 0")
        );
    }
}
