//! Reads that one reconcile shares between its phases: what a provider read to bind the
//! desired set (a namespace's associations, an identity's credentials, a service account's
//! policy) serves its stale-link search right after, instead of being read again.
//!
//! The memo lives only as long as one [`Reconciler`](crate::Reconciler) run, in its task;
//! outside a reconcile, [`share_read`] keeps nothing and [`take_shared_read`] finds nothing, so
//! a provider calls them unconditionally. A shared read is taken once.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

type Reads = HashMap<String, Box<dyn Any + Send>>;

tokio::task_local! {
    static SHARED_READS: Arc<Mutex<Reads>>;
}

/// Runs `work` with a fresh memo of shared reads.
pub(crate) async fn scope<F: Future>(work: F) -> F::Output {
    SHARED_READS.scope(Arc::default(), work).await
}

/// Keeps `value`, read from the cloud, under `key` for the rest of the current reconcile.
/// `key` should name the provider's cluster and what was read, e.g. `aws/prod/namespace/shop`.
/// Outside a reconcile, does nothing.
pub fn share_read<T: Send + 'static>(key: String, value: T) {
    let _ = SHARED_READS.try_with(|reads| {
        reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Box::new(value));
    });
}

/// Takes what an earlier phase of the current reconcile shared under `key`, if it was of type
/// `T`.
///
/// ```
/// use porter_identity_core::{share_read, take_shared_read};
/// // Outside a reconcile nothing is kept.
/// share_read("aws/prod/namespace/shop".to_owned(), vec!["a-1".to_owned()]);
/// assert_eq!(take_shared_read::<Vec<String>>("aws/prod/namespace/shop"), None);
/// ```
pub fn take_shared_read<T: Send + 'static>(key: &str) -> Option<T> {
    SHARED_READS
        .try_with(|reads| {
            let mut reads = reads.lock().unwrap_or_else(PoisonError::into_inner);
            let value = reads.remove(key)?;
            match value.downcast::<T>() {
                Ok(v) => Some(*v),
                Err(other) => {
                    // Another type under the same key: leave it for whoever shared it.
                    reads.insert(key.to_owned(), other);
                    None
                }
            }
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_is_shared_within_the_scope_once() {
        scope(async {
            share_read("k".to_owned(), 7_u32);
            assert_eq!(take_shared_read::<String>("k"), None, "another type");
            assert_eq!(take_shared_read::<u32>("k"), Some(7));
            assert_eq!(take_shared_read::<u32>("k"), None, "taken once");
        })
        .await;
        scope(async {
            assert_eq!(take_shared_read::<u32>("k"), None, "a new scope is empty");
        })
        .await;
    }
}
