//! `FakeServer`: the running HTTP face of a provider's fake — where it listens, and how it
//! stops. The faces themselves (routes, the cloud's JSON) live in each provider crate; core has
//! no HTTP server, only the task that runs one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`FakeServer::shutdown`] waits for open requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The signal a face's server stops on: it resolves on [`FakeServer::shutdown`] or drop.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running HTTP face of a fake cloud (each fake's `serve`). Stops on
/// [`shutdown`](Self::shutdown) or, in the background, when dropped.
///
/// ```
/// use std::net::SocketAddr;
/// use porter_identity_core::testing::FakeServer;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
/// let server = FakeServer::spawn(addr, |stop| async move {
///     stop.await; // a real face serves requests until this resolves
/// });
/// assert_eq!(server.url(), "http://127.0.0.1:8080");
/// server.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Runs `serve`, a server already listening on `addr`, as a task; it is given the signal
    /// to stop gracefully on. Must be called within a Tokio runtime.
    pub fn spawn<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: FnOnce(ShutdownSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async {
            let _ = stopped.await;
        })));
        FakeServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The base URL to give a client as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits (a few seconds at most) for open requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Graceful: the server task finishes open requests in the background.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
