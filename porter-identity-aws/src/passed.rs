//! `Passed`: reads that passed their checks (a role, a target role's chain, an IRSA role or OIDC
//! provider), kept for the provider's lifetime and shared by every call that needs the same one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

/// One cell per key, filled once by the first call that needs it; calls at the same time wait
/// for that read instead of making their own. A read that failed leaves its cell empty, so the
/// next call reads again; [`forget`](Self::forget) drops a kept one, so that a fix is seen (or
/// verify reads afresh).
#[derive(Debug)]
pub(crate) struct Passed<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V> Passed<K, V> {
    pub(crate) fn new() -> Self {
        Passed {
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The cell of `key`, made empty when absent.
    pub(crate) fn cell(&self, key: &K) -> Arc<OnceCell<V>> {
        self.lock().entry(key.clone()).or_default().clone()
    }

    /// Drops what is kept for `key`: the next call reads it again.
    pub(crate) fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        // Only short, consistent steps under the lock: a poisoned one is still sound.
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
