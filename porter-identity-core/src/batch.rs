//! Running a batch group by group: what every provider's `bind_all`, `plan_all` and
//! `unbind_all` share once its bindings are grouped by the cloud object they touch (an Azure
//! identity, a GCP service account's IAM policy).

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::future::join_all;

use crate::{Cloud, Error, ErrorKind, Result};

/// Runs `work` once per group with the indexes of its items (`keys[i]` is item `i`'s group),
/// groups side by side, and puts the results back in input order. Items that already have a
/// result in `results` (refused before any call) are not run.
///
/// `work` goes through one group's items as the cloud requires (Azure: one write at a time per
/// identity; GCP: one read-modify-write per policy), while other groups proceed.
///
/// ```
/// use porter_identity_core::Cloud;
/// use porter_identity_core::provider::per_group;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let keys = [Some("a"), Some("b"), Some("a")];
/// let results = per_group(Cloud::Gcp, keys, vec![None, None, None], |items: Vec<usize>| async move {
///     let n = items.len();
///     items.into_iter().map(|i| (i, Ok::<_, porter_identity_core::Error>(n))).collect()
/// }).await;
/// let sizes: Vec<usize> = results.into_iter().map(|r| r.unwrap()).collect();
/// assert_eq!(sizes, vec![2, 1, 2]);
/// # });
/// ```
pub async fn per_group<K, T, F, Fut>(
    cloud: Cloud,
    keys: impl IntoIterator<Item = K>,
    mut results: Vec<Option<Result<T>>>,
    work: F,
) -> Vec<Result<T>>
where
    K: Ord,
    F: Fn(Vec<usize>) -> Fut,
    Fut: Future<Output = Vec<(usize, Result<T>)>>,
{
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        if results.get(i).is_some_and(Option::is_none) {
            groups.entry(key).or_default().push(i);
        }
    }
    for (i, result) in join_all(groups.into_values().map(work))
        .await
        .into_iter()
        .flatten()
    {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    }
    batch_results(cloud, "batch", results)
}

/// The results of a batch whose items were each given one: an item left without a result (a
/// bug, never expected) becomes an error of `operation` rather than a panic or a shorter list.
pub fn batch_results<T>(
    cloud: Cloud,
    operation: &str,
    results: Vec<Option<Result<T>>>,
) -> Vec<Result<T>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::cloud(
                    ErrorKind::Other,
                    cloud,
                    operation,
                    "an item of the batch got no result (a bug in porter-identity)",
                ))
            })
        })
        .collect()
}
