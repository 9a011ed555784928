//! The request middleware: request id (accepted from `X-Request-Id` when well-formed, minted
//! otherwise, always echoed), the request context the audit log needs (source IP, user agent,
//! audit id), a tracing span, one log line per request, server errors logged once with their
//! cause, a safety net that turns any error response not already in problem+json (e.g. produced
//! by actix itself) into one, and the audit entry of a mutating request refused before it reached
//! the gateway (401, malformed JSON, ...) or of a read when read auditing is on.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use tracing::Instrument;

use super::problem::{ApiError, PROBLEM_JSON};
use crate::audit::{Entry, now_us};
pub use crate::context::{RequestContext, current, current_request_id, within};
use crate::gateway::AppState;

/// Header carrying the request id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Header carrying the audit id of a request that was audited.
pub const AUDIT_ID: HeaderName = HeaderName::from_static("x-audit-id");

/// The route pattern of an answered request (`/v1/clusters/{cluster}/nodes`), for metrics. Built
/// from the router's captures instead of `match_pattern()`, which matches every route's regex
/// again (measured: half of kubegate's CPU on a cached read went to route regexes).
fn route_label(res: &ServiceResponse<BoxBody>) -> String {
    let unrouted = res
        .response()
        .error()
        .and_then(|e| e.as_error::<crate::api::problem::ApiError>())
        .is_some_and(|e| matches!(e, crate::api::problem::ApiError::RouteNotFound { .. }));
    if unrouted {
        return "unmatched".to_owned();
    }
    let req = res.request();
    let info = req.match_info();
    let mut captures = info.iter().peekable();
    let mut label = String::with_capacity(req.path().len() + 16);
    for segment in req.path().split('/').skip(1) {
        label.push('/');
        match captures.peek() {
            Some((name, value)) if *value == segment => {
                label.push('{');
                label.push_str(name);
                label.push('}');
                captures.next();
            }
            _ => label.push_str(segment),
        }
    }
    if captures.next().is_some() {
        // A capture that is not one plain segment (percent-encoded, a tail): ask the router.
        return req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
    }
    label
}

/// The socket's peer, or (only when the peer is a configured trusted proxy) the nearest
/// untrusted address of `X-Forwarded-For`.
fn source_ip(req: &ServiceRequest, trusted: &[std::net::IpAddr]) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer.to_string());
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hop = forwarded
        .split(',')
        .rev()
        .filter_map(|h| h.trim().parse::<std::net::IpAddr>().ok())
        .find(|ip| !trusted.contains(ip));
    Some(hop.unwrap_or(peer).to_string())
}

/// A caller's id is kept when it is 1–128 characters of `A-Z a-z 0-9 - _ . :` (enough for UUIDs,
/// ULIDs and trace ids, and safe to log).
fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(accepted_request_id)
        .unwrap_or_else(|| crate::audit::new_id().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let quiet = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let method = req.method().to_string();
    let started = Instant::now();
    let state = req
        .app_data::<actix_web::web::Data<crate::gateway::AppState>>()
        .cloned();
    let trusted: &[std::net::IpAddr] = state
        .as_ref()
        .map(|s| s.trusted_proxies.as_slice())
        .unwrap_or(&[]);
    let ctx = std::sync::Arc::new(RequestContext {
        request_id: id.clone(),
        source_ip: source_ip(&req, trusted),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        method: req.method().to_string(),
        path: req.path().to_owned(),
        received_at_us: crate::audit::now_us(),
        audit_id: std::sync::Mutex::new(None),
        principal: std::sync::Mutex::new(None),
        read_only: std::sync::atomic::AtomicBool::new(false),
        idempotency_key: req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| crate::idempotency::valid_key(k))
            .map(str::to_owned),
        bearer: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| secrecy::SecretString::from(token.trim().to_owned())),
    });

    let outcome = within(ctx.clone(), async {
        let res = next.call(req).await?.map_into_boxed_body();
        // The Kubernetes API's answers are the API server's (its Status, in JSON or protobuf).
        let res = if ctx.path.starts_with("/k8s/") {
            res
        } else {
            problem_safety_net(res)
        };
        if let Some(state) = &state {
            audit_unrouted(state, &ctx, &res).await;
        }
        Ok::<_, Error>(res)
    })
    .instrument(span.clone())
    .await;

    let _entered = span.enter();
    let mut res = match outcome {
        Ok(res) => res,
        // An error from a middleware below us: answer it here so it carries the request id too.
        Err(err) => {
            tracing::error!(error = ?err, "request failed in middleware");
            return Err(err);
        }
    };
    let status = res.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(state) = &state {
        let route = route_label(&res);
        state
            .metrics
            .http_requests
            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
            .observe(elapsed_ms / 1000.0);
    }
    if status.is_server_error() {
        let cause = res.response().error().map(|e| format!("{e:?}"));
        tracing::error!(
            status = status.as_u16(),
            elapsed_ms,
            cause,
            "request failed"
        );
    } else if quiet {
        tracing::debug!(status = status.as_u16(), elapsed_ms, "request done");
    } else {
        tracing::info!(status = status.as_u16(), elapsed_ms, "request done");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(audit_id) = ctx.audit_id.lock().expect("audit id").clone()
        && let Ok(value) = HeaderValue::from_str(&audit_id)
    {
        res.headers_mut().insert(AUDIT_ID, value);
    }
    Ok(res)
}

/// Rewrite an error response that is not problem+json (actix's own plain-text errors) into one.
fn problem_safety_net(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // Problems, and JSON bodies a handler chose deliberately (e.g. `/readyz` at 503), stay.
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let detail = match res.response().error() {
        Some(e) if status.is_client_error() => e.to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    res.map_body(|head, _| {
        let mut rebuilt = ApiError::Status { status, detail }.error_response();
        if let Some(allow) = allow {
            rebuilt.headers_mut().insert(header::ALLOW, allow);
        }
        for (name, value) in rebuilt.headers() {
            head.headers.insert(name.clone(), value.clone());
        }
        rebuilt.into_body()
    })
}

/// The audit entry of a request the gateway never saw: a mutating `/v1` call refused earlier
/// (no token, malformed body, unknown route), or a read when read auditing is on.
async fn audit_unrouted(
    state: &AppState,
    ctx: &RequestContext,
    res: &actix_web::dev::ServiceResponse,
) {
    if ctx.audit_id.lock().expect("audit id").is_some()
        || !(ctx.path.starts_with("/v1/") || ctx.path.starts_with("/k8s/"))
    {
        return;
    }
    // Slack answers every command with 200 (a message); its handler records what it refuses.
    if ctx.path.starts_with("/v1/integrations/slack/") && res.status().as_u16() < 400 {
        return;
    }
    let read = matches!(ctx.method.as_str(), "GET" | "HEAD" | "OPTIONS")
        || ctx.path == "/v1/access-reviews"
        || ctx.read_only.load(std::sync::atomic::Ordering::Relaxed);
    if read && !state.audit_reads {
        return;
    }
    let status = res.status().as_u16();
    let mut principal = ctx.principal.lock().expect("principal").clone();
    if principal.is_none() && status != 401 {
        // Refused before the token extractor ran (e.g. a malformed body): name the caller anyway.
        if let Some(token) = &ctx.bearer {
            use secrecy::ExposeSecret;
            principal = state
                .auth
                .authenticator
                .verify(token.expose_secret())
                .await
                .ok();
        }
    }
    let outcome = crate::gateway::outcome_of(status);
    let audit_id = crate::audit::new_id();
    let entry = Entry {
        audit_id,
        stage: if read { "read" } else { "rejected" }.into(),
        outcome: outcome.into(),
        received_at_us: ctx.received_at_us,
        completed_at_us: Some(now_us()),
        request_id: Some(ctx.request_id.clone()),
        subject: principal.as_ref().map(|p| p.subject.clone()),
        issuer: principal.as_ref().map(|p| p.issuer.clone()),
        delegated_by: principal
            .as_ref()
            .and_then(|p| p.delegated_by.as_ref())
            .map(|b| b.subject.clone()),
        groups: principal
            .map(|p| p.groups.into_iter().collect())
            .unwrap_or_default(),
        source_ip: ctx.source_ip.clone(),
        user_agent: ctx.user_agent.clone(),
        http_method: Some(ctx.method.clone()),
        http_path: Some(ctx.path.clone()),
        http_status: Some(i32::from(status)),
        problem_type: res
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
            .map(|e| e.problem().problem_type),
        ..Entry::default()
    };
    match state.audit.append(vec![entry]).await {
        Ok(_) => *ctx.audit_id.lock().expect("audit id") = Some(audit_id.to_string()),
        Err(e) => tracing::error!(error = %e, "could not audit a request"),
    }
}
