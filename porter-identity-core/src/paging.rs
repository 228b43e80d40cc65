//! Following the pages of a cloud's list call, written once for every provider.

use std::future::Future;

use futures_util::stream::{self, Stream, TryStreamExt};

use crate::{Error, ErrorKind, Operation, Result};

/// The pages of a list call, as a stream, so a caller can work on one page while the next is
/// fetched. `fetch(token, page)` makes one call for page `page` (1-based) — `token` is `None`
/// for the first — and returns the page's items and the next token (`None` or empty on the
/// last page). A token the cloud hands back twice in a row is an error rather than an endless
/// loop. The stream ends after the first error.
///
/// ```
/// use futures_util::TryStreamExt;
/// use porter_identity_core::{Cloud, Operation};
/// use porter_identity_core::provider::pages;
///
/// const LIST_THINGS: Operation = Operation::new(Cloud::Aws, "ListThings");
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let all: Vec<Vec<u32>> = pages(LIST_THINGS, |token, page| async move {
///     let next = (page < 3).then(|| format!("after-{page}"));
///     Ok::<_, porter_identity_core::Error>((vec![page], next))
/// })
/// .try_collect()
/// .await?;
/// assert_eq!(all, vec![vec![1], vec![2], vec![3]]);
/// # Ok::<(), porter_identity_core::Error>(())
/// # }).unwrap();
/// ```
pub fn pages<T, F, Fut>(operation: Operation, fetch: F) -> impl Stream<Item = Result<Vec<T>>>
where
    F: FnMut(Option<String>, u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    struct Cursor<F> {
        fetch: F,
        token: Option<String>,
        page: u32,
        done: bool,
    }
    let start = Cursor {
        fetch,
        token: None,
        page: 0,
        done: false,
    };
    stream::try_unfold(start, move |mut cursor| async move {
        if cursor.done {
            return Ok(None);
        }
        cursor.page += 1;
        let (items, next) = (cursor.fetch)(cursor.token.clone(), cursor.page).await?;
        match next.filter(|t| !t.is_empty()) {
            None => cursor.done = true,
            Some(next) if Some(&next) == cursor.token.as_ref() => {
                return Err(Error::cloud(
                    ErrorKind::Other,
                    operation.cloud(),
                    operation.name(),
                    format!(
                        "the service returned the same pagination token twice (after page {})",
                        cursor.page
                    ),
                ));
            }
            Some(next) => cursor.token = Some(next),
        }
        Ok(Some((items, cursor)))
    })
}

/// Every item of every page of a list call; see [`pages`].
pub async fn collect_pages<T, F, Fut>(operation: Operation, fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>, u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    pages(operation, fetch).try_concat().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cloud;

    const LIST: Operation = Operation::new(Cloud::Aws, "List");

    #[tokio::test]
    async fn follows_tokens_until_the_last_page() {
        let mut seen = Vec::new();
        let all = collect_pages(LIST, |token, page| {
            seen.push((token.clone(), page));
            async move {
                let next = match page {
                    1 => Some("t1".to_owned()),
                    2 => Some("t2".to_owned()),
                    _ => Some(String::new()), // an empty token ends the list, as EKS does
                };
                Ok((vec![page * 10, page * 10 + 1], next))
            }
        })
        .await
        .unwrap();
        assert_eq!(all, vec![10, 11, 20, 21, 30, 31]);
        assert_eq!(
            seen,
            vec![
                (None, 1),
                (Some("t1".to_owned()), 2),
                (Some("t2".to_owned()), 3)
            ]
        );
    }

    #[tokio::test]
    async fn a_repeated_token_is_an_error_not_a_loop() {
        let err = collect_pages(Operation::new(Cloud::Azure, "List"), |_, _| async {
            Ok((vec![1], Some("same".to_owned())))
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
        assert!(
            err.to_string().contains("same pagination token twice"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let err = collect_pages(Operation::new(Cloud::Gcp, "List"), |_, page| async move {
            if page == 2 {
                Err(Error::cloud(
                    ErrorKind::Unavailable,
                    Cloud::Gcp,
                    "List",
                    "boom",
                ))
            } else {
                Ok((vec![page], Some(format!("t{page}"))))
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
