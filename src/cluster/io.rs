//! Where cluster connections live. actix-web runs each worker on its own single-threaded runtime,
//! and a socket belongs to the runtime that opened it: a pooled connection opened by one worker
//! and used by another broke when the first worker stopped (at shutdown an idle worker stops at
//! once, and a change in flight on a busy one failed with "SendRequest").
//!
//! So each HTTP worker has kube-rs clients of its own, built on first use from the cluster's
//! settings: a request's calls open, pool and read their connections on the thread that serves
//! it, with no hand-off to another thread and back (that hand-off was about 40 % of the time
//! slices of an audited change, see BENCHMARKS.md). Everything else (watch caches, background tasks, code not on a worker) uses
//! the cluster's shared client, whose requests run on one runtime of kubegate's own that lives
//! as long as the process.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

/// The runtime that owns every connection to an API server but the workers' own, and runs the
/// watch caches' tasks, so that a watch event is read and applied on one thread. One thread: its
/// work is mostly watch events, and a second thread mostly added wake-ups
/// (BENCHMARKS.md, "One thread for the audit writer, one for the watches").
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kubegate-cluster-io")
            .enable_all()
            .build()
            .expect("the cluster I/O runtime")
    })
}

/// A layer that runs each request of the service below on [`runtime`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OnClusterRuntime;

impl<S> Layer<S> for OnClusterRuntime {
    type Service = Spawning<S>;
    fn layer(&self, inner: S) -> Spawning<S> {
        Spawning { inner }
    }
}

pub(crate) struct Spawning<S> {
    inner: S,
}

impl<S, R> Service<R> for Spawning<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let call = runtime().spawn(self.inner.call(request));
        Box::pin(async move {
            match call.await {
                Ok(result) => result.map_err(Into::into),
                Err(e) => Err(Box::new(e) as BoxError),
            }
        })
    }
}

thread_local! {
    /// Set on the HTTP workers' threads (see [`mark_http_worker`]).
    static ON_HTTP_WORKER: Cell<bool> = const { Cell::new(false) };
    /// This worker's own clients, by [`ClientId`].
    static WORKER_CLIENTS: RefCell<HashMap<ClientId, kube::Client>> = RefCell::default();
}

/// Names one cluster entry's settings, to find its clients on each worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientId(u64);

impl ClientId {
    pub(crate) fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Called on each HTTP worker's thread as it builds its application: that thread's runtime
/// lives as long as the thread, and serves every request the worker takes.
pub fn mark_http_worker() {
    ON_HTTP_WORKER.with(|w| w.set(true));
}

/// On an HTTP worker, its own client for these settings (built on first use); elsewhere `None`.
pub(crate) fn worker_client(id: ClientId, config: &kube::Config) -> Option<kube::Client> {
    if !ON_HTTP_WORKER.with(Cell::get) {
        return None;
    }
    WORKER_CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        if let Some(client) = clients.get(&id) {
            return Some(client.clone());
        }
        let client = kube::client::ClientBuilder::try_from(config.clone())
            .ok()?
            .build();
        clients.insert(id, client.clone());
        Some(client)
    })
}
