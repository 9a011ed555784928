//! Where cluster connections live. actix-web runs each worker on its own single-threaded runtime,
//! and a socket belongs to the runtime that opened it: a pooled connection opened by one worker
//! and used by another broke when the first worker stopped (at shutdown an idle worker stops at
//! once, and a change in flight on a busy one failed with "SendRequest"). Every request to an
//! API server is therefore run on one runtime of kubegate's own, which lives as long as the
//! process; answers and streams are read from any worker as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

/// The runtime that owns every connection to an API server.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
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
