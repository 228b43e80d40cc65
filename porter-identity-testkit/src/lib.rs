//! Test helpers shared by porter-identity's own test suites, in one place each depends on (see
//! the README). Nothing here talks to an address outside 127.0.0.1.
#![allow(clippy::expect_used, clippy::panic)] // a helper that cannot do its job fails the test

#[cfg(feature = "aws")]
pub mod moto;
#[cfg(feature = "aws")]
pub mod scripted;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other test (in this run or an earlier one against the same server) uses:
/// moto's state is shared by every test talking to it.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}
