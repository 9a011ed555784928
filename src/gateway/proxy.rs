//! HTTP to a pod or a service through the API server's `proxy` subresource (what `kubectl proxy`
//! and `curl .../pods/NAME/proxy/` do): checked (`proxy`, admin only), each request audited
//! (intent before it is sent, outcome with the status), the answer streamed back as it comes.

use serde_json::json;

use super::Error;
use crate::action::Target;
use crate::audit::{Entry, now_us};
use crate::auth::Principal;
use crate::context;
use crate::validate::{self, Errors};

/// What is proxied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Pod,
    Service,
}

impl ProxyKind {
    fn plural(self) -> &'static str {
        match self {
            Self::Pod => "pods",
            Self::Service => "services",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Service => "service",
        }
    }
}

/// One proxied request.
#[derive(Debug)]
pub struct ProxyRequest {
    pub target: Target,
    pub kind: ProxyKind,
    /// `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` (the API server's syntax).
    pub name: String,
    pub method: http::Method,
    /// The path after `/proxy`, as sent (percent-encoding kept), starting with `/` or empty.
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Headers that belong to one hop (RFC 9110 §7.6.1), and kubegate's own: never passed on.
const NOT_FORWARDED: [&str; 11] = [
    "authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-on-behalf-of",
];

/// Headers of the answer that belong to one hop.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn check_name(kind: ProxyKind, name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split(':').collect();
    let (object, port) = match parts.as_slice() {
        [n] => (*n, None),
        [n, p] => (*n, Some(*p)),
        [scheme, n, p] if matches!(*scheme, "http" | "https") => (*n, Some(*p)),
        _ => return Err("NAME, NAME:PORT or http(s):NAME:PORT".into()),
    };
    match kind {
        ProxyKind::Pod => validate::dns1123_subdomain(object)?,
        ProxyKind::Service => validate::dns1035_label(object)?,
    }
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        let numeric = p.parse::<u16>().is_ok_and(|n| n > 0);
        let named = p.len() <= 15
            && validate::dns1123_label(p).is_ok()
            && p.chars().any(|c| c.is_ascii_alphabetic());
        if !numeric && !named {
            return Err(format!("{p:?} is not a port number or name"));
        }
    }
    Ok(())
}

/// Send one request through the API server's proxy; the answer's head is audited, its body is
/// the caller's to stream.
pub async fn proxy(
    state: &super::AppState,
    principal: &Principal,
    req: ProxyRequest,
) -> Result<http::Response<kube::client::Body>, Error> {
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let shown_path = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone(),
    };
    let base = super::entry_for(
        audit_id,
        principal,
        ctx.as_deref(),
        &req.target,
        "proxy",
        (req.kind.singular(), req.name.clone()),
        json!({"method": req.method.as_str(), "path": shown_path, "bodyBytes": req.body.len()}),
        false,
    );
    let mut errors = Errors::default();
    if let Err(m) = validate::dns1123_label(&req.target.namespace) {
        errors.add("namespace", m);
    }
    if let Err(m) = check_name(req.kind, &req.name) {
        errors.add("name", m);
    }
    let admitted = if errors.is_empty() {
        state
            .auth
            .authorize(
                principal,
                "proxy",
                &req.target.cluster,
                Some(&req.target.namespace),
            )
            .map_err(Error::from)
    } else {
        Err(Error::from(errors))
    };
    let intent = super::commit_intent(state, principal, &req.target, base, admitted).await?;
    let cluster = state.cluster(principal, &req.target.cluster)?;
    let pending = state.audit.pending(intent);
    let mut uri = format!(
        "/api/v1/namespaces/{}/{}/{}/proxy{}",
        req.target.namespace,
        req.kind.plural(),
        req.name,
        req.path
    );
    if let Some(q) = &req.query {
        uri.push('?');
        uri.push_str(q);
    }
    let mut builder = http::Request::builder().method(req.method.clone()).uri(uri);
    for (name, value) in &req.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) && name != http::header::CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(req.body)
        .map_err(|e| Error::bad_request(format!("cannot forward this request: {e}")))?;
    let result = cluster.proxy(request).await.map_err(Error::from);
    pending
        .finish(|intent| match &result {
            Ok(res) => Entry {
                stage: "outcome".into(),
                outcome: "succeeded".into(),
                completed_at_us: Some(now_us()),
                http_status: Some(i32::from(res.status().as_u16())),
                result: Some(json!({"status": res.status().as_u16()}).to_string()),
                ..intent
            },
            Err(e) => super::failed_outcome(intent, e),
        })
        .await;
    result
}
