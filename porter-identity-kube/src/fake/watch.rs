//! Watches (`GET` of a collection with `watch=true`): a chunked stream of newline-delimited
//! JSON events, `{"type": "ADDED" | "MODIFIED" | "DELETED", "object": {…}}`, of every change
//! after the request's `resourceVersion` that the namespace and selectors want, replayed
//! from the store's watch log and then as they happen. Without a `resourceVersion` (or with
//! `0`) the current objects come first as `ADDED`. A version older than the log keeps is one
//! `ERROR` event (a 410 `Expired` Status) that ends the stream, as the API server answers once
//! its watch cache has moved on. With `allowWatchBookmarks=true`, a `BOOKMARK` of the version
//! reached follows every few seconds of quiet. The stream ends after `timeoutSeconds`
//! (1800 unless given), when the client goes, or when the server shuts down.
//!
//! An object changed so that a selector no longer wants it is not sent as `DELETED` (the API
//! server would): the fake's watchers select on what does not change.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::FakeKube;
use super::resources::Resource;
use super::store::Selector;

/// How long a watch is quiet before it gets a bookmark.
const BOOKMARK_AFTER: Duration = Duration::from_secs(5);

/// What a watch request asks for.
#[derive(Debug)]
pub(super) struct Watch {
    pub(super) resource: Resource,
    pub(super) selector: Selector,
    /// The version to send changes after; `None` (or `0`): the current objects first.
    pub(super) since: Option<u64>,
    /// `sendInitialEvents=true`: the current objects first, then a bookmark saying so.
    pub(super) initial_events: bool,
    pub(super) bookmarks: bool,
    pub(super) timeout: Duration,
}

/// The streaming response of a watch; its events are sent by a task of their own, which ends
/// with the stream.
pub(super) fn respond(
    kube: FakeKube,
    shutdown: tokio::sync::watch::Receiver<bool>,
    watch: Watch,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(run(kube, shutdown, watch, tx));
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// One event, as a line of the stream.
fn line(event: &str, object: Value) -> Bytes {
    let mut text = json!({"type": event, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(resource: &Resource, version: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": version.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}),
    )
}

fn expired(asked: u64, oldest: u64) -> Bytes {
    line(
        "ERROR",
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("too old resource version: {asked} ({oldest})"),
            "reason": "Expired",
            "code": 410,
        }),
    )
}

/// Sends the watch's events until it ends. A send fails when the client has gone.
async fn run(
    kube: FakeKube,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    watch: Watch,
    tx: mpsc::Sender<Bytes>,
) {
    let deadline = tokio::time::Instant::now() + watch.timeout;
    let mut latest = kube.subscribe();
    // Marked seen before the store is read: a change made after that wakes the loop below.
    latest.borrow_and_update();
    let mut sent = match watch.since {
        Some(version) if version > 0 && !watch.initial_events => version,
        _ => {
            let (objects, version) = kube.select(&watch.selector);
            for object in objects {
                if tx
                    .send(line("ADDED", watch.resource.served(object)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if watch.initial_events
                && tx
                    .send(bookmark(&watch.resource, version, true))
                    .await
                    .is_err()
            {
                return;
            }
            version
        }
    };
    loop {
        latest.borrow_and_update();
        match kube.changes_after(&watch.selector, sent) {
            Ok((changes, version)) => {
                for (event, object) in changes {
                    if tx
                        .send(line(event.as_str(), watch.resource.served(object)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                sent = version;
            }
            Err(oldest) => {
                let _ = tx.send(expired(sent, oldest)).await;
                return;
            }
        }
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
            () = stopped(&mut shutdown) => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(BOOKMARK_AFTER), if watch.bookmarks => {
                if tx.send(bookmark(&watch.resource, sent, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Until the server stops; a dropped sender (the server's task gone) is a stop too.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // Its guard of the value is dropped here: it must not live across the stream's sends.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}
