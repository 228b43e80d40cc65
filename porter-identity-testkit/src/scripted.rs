//! A server on 127.0.0.1 that answers every request the same way, counting them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A server on 127.0.0.1 that answers every request with one canned response, counting them:
/// for what a stateful fake never sends (an endpoint that only answers 503).
pub struct Scripted {
    /// Its base URL.
    pub url: String,
    requests: Arc<AtomicU32>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Scripted {
    /// Requests answered so far.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves `status` with the JSON `body` to every request until dropped.
pub async fn scripted(status: u16, body: &'static str) -> Scripted {
    use axum::http::{StatusCode, header};
    let requests = Arc::new(AtomicU32::new(0));
    let counter = requests.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::from_u16(status).expect("a valid status"),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Scripted {
        url,
        requests,
        _stop: stop,
    }
}
