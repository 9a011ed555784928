//! The request being served, as the layers below the HTTP edge see it: who sent it, from where,
//! its request id, and the audit id once an entry was written. The HTTP middleware creates one per
//! request and runs the request inside it (a task-local); the gateway and the audit read it. It
//! holds no HTTP types, so the core never depends on the web framework.

/// What the handlers and the gateway may want to know about the request being served.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub path: String,
    pub received_at_us: i64,
    /// Set by whoever wrote this request's audit entries.
    pub audit_id: std::sync::Mutex<Option<String>>,
    /// The verified caller, once the token extractor ran.
    pub principal: std::sync::Mutex<Option<crate::auth::Principal>>,
    /// The request only read (a read command through `POST .../commands`): audited as a read.
    pub read_only: std::sync::atomic::AtomicBool,
    /// A well-formed Idempotency-Key of the request, for the audit log.
    pub idempotency_key: Option<String>,
    /// The bearer token, kept only to name the caller of a request refused before its handler
    /// ran (never logged, never stored).
    pub bearer: Option<secrecy::SecretString>,
}

tokio::task_local! {
    static CURRENT: std::sync::Arc<RequestContext>;
}

/// The context of the request being handled on this task, if any.
pub fn current() -> Option<std::sync::Arc<RequestContext>> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Run `f` as part of the request `ctx` describes (work that outlives the response, such as a
/// chat command finished later, is audited with its request's id and caller).
pub async fn within<F: std::future::Future>(
    ctx: std::sync::Arc<RequestContext>,
    f: F,
) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.clone()).ok()
}
