//! The `Idempotency-Key` middleware for mutating `/v1` requests: claim the key for the caller
//! with a fingerprint of the request (method, path, query, body), run the request once, store
//! its answer (unless it failed on kubegate's or the cluster's side, 5xx, so a retry runs again),
//! and answer retries from storage with `Idempotent-Replayed: true` and an audit entry marked as a
//! replay. A different request under the same key is 422; one still running is 409.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use futures::StreamExt;
use ring::digest;

use super::middleware;
use super::problem::{ApiError, FieldError};
use crate::audit::{Entry, now_us};
use crate::gateway::AppState;
use crate::idempotency::{self, Claim, KeyOwner, StoredResponse};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A path template's segments: `None` for a parameter.
pub type Template = Vec<Option<String>>;

/// A mutation of the API: method and path template.
pub type Mutation = (&'static str, Template);

/// The operations whose OpenAPI description takes an `Idempotency-Key` (method, path template):
/// the document says where keys apply (see `api::openapi`), and this middleware does just that.
pub fn mutations(doc: &utoipa::openapi::OpenApi) -> Vec<Mutation> {
    use utoipa::openapi::RefOr;
    let mut ops = Vec::new();
    for (path, item) in &doc.paths.paths {
        let segments: Template = path
            .split('/')
            .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
            .collect();
        let methods = [
            ("PUT", &item.put),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in methods {
            let takes_key = op
                .iter()
                .flat_map(|op| op.parameters.iter().flatten())
                .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"));
            if takes_key {
                ops.push((method, segments.clone()));
            }
        }
    }
    ops
}

/// Whether `method path` is one of the API's mutations (see `mutations`).
fn is_mutation(method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    super::openapi::PUBLISHED
        .mutations
        .iter()
        .any(|(m, template)| {
            *m == method
                && template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| match t {
                    Some(t) => t == s,
                    None => !s.is_empty(),
                })
        })
}

fn refuse(req: ServiceRequest, e: ApiError) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = e.error_response();
    Ok(req.into_response(res))
}

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let key = req
        .headers()
        .get(&IDEMPOTENCY_KEY)
        .map(|v| v.to_str().map(str::to_owned));
    // Only a mutation the API has: any other method or path goes on to its 405 or 404.
    let Some(key) = key.filter(|_| is_mutation(req.method().as_str(), req.path())) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let key = match key {
        Ok(k) if idempotency::valid_key(&k) => k,
        _ => {
            return refuse(
                req,
                ApiError::from(crate::gateway::Error::BadRequest {
                    detail:
                        "invalid Idempotency-Key: 1-255 characters of A-Z a-z 0-9 - _ . : ~ + / ="
                            .into(),
                    errors: vec![FieldError {
                        field: "Idempotency-Key".into(),
                        message: "invalid".into(),
                    }],
                }),
            );
        }
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The key belongs to the caller. Without a valid token, the request goes on to its 401.
    let ctx = middleware::current();
    let principal = match ctx.as_ref().and_then(|c| c.bearer.clone()) {
        Some(token) => {
            use secrecy::ExposeSecret;
            state
                .auth
                .authenticator
                .verify(token.expose_secret())
                .await
                .ok()
        }
        None => None,
    };
    let Some(principal) = principal else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };

    // Read the body (bounded) to fingerprint it, then hand it on unchanged.
    let mut body = web::BytesMut::new();
    let mut payload = req.take_payload();
    let limit = if req.path().ends_with("/apply") {
        state.apply.max_body_bytes
    } else {
        state.max_body_bytes
    };
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            return refuse(req, ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    // The person a bot acts for is part of the request: the same key for someone else is reuse.
    let on_behalf_of = req
        .headers()
        .get(crate::auth::ON_BEHALF_OF)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let mut fp = digest::Context::new(&digest::SHA256);
    for part in [
        req.method().as_str().as_bytes(),
        b"\n",
        req.path().as_bytes(),
        b"?",
        req.query_string().as_bytes(),
        b"\n",
        &on_behalf_of,
        b"\n",
        &body,
    ] {
        fp.update(part);
    }
    let fingerprint = fp.finish().as_ref().to_vec();
    let owner = KeyOwner {
        issuer: principal.issuer.clone(),
        subject: principal.subject.clone(),
        key: key.clone(),
    };
    let claim = idempotency::claim(
        state.audit.pool(),
        &owner,
        &fingerprint,
        state.idempotency_ttl,
        state.max_wait * 2,
    )
    .await;
    match claim {
        Err(e) => {
            tracing::error!(error = %e, "idempotency store unavailable");
            refuse(
                req,
                ApiError::DatabaseUnavailable {
                    detail: "the idempotency store is unavailable; nothing was done".into(),
                },
            )
        }
        Ok(Claim::Mismatch) => refuse(req, ApiError::IdempotencyKeyReused),
        Ok(Claim::InFlight) => refuse(req, ApiError::IdempotencyKeyInFlight),
        Ok(Claim::Replay(stored)) => {
            state.metrics.idempotent_replays.inc();
            replay_audit(&state, &principal, ctx.as_deref(), &key, &stored).await;
            let mut res = HttpResponse::build(
                StatusCode::from_u16(stored.status.unwrap_or(200) as u16).unwrap_or(StatusCode::OK),
            );
            if let Some(ct) = &stored.content_type {
                res.insert_header((header::CONTENT_TYPE, ct.as_str()));
            }
            res.insert_header((REPLAYED, HeaderValue::from_static("true")));
            Ok(req.into_response(res.body(stored.body.unwrap_or_default())))
        }
        Ok(Claim::Claimed) => {
            req.set_payload(actix_web::dev::Payload::from(body));
            let res = next.call(req).await?;
            let status = res.status();
            let content_type = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (req, res) = res.into_parts();
            let (head, body) = res.into_parts();
            let bytes: Bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
            let audit_id = ctx
                .as_ref()
                .and_then(|c| c.audit_id.lock().expect("audit id").clone());
            let stored = StoredResponse {
                status: Some(i32::from(status.as_u16())),
                content_type,
                audit_id,
                body: Some(bytes.to_vec()),
            };
            let outcome = if status.is_server_error() {
                idempotency::release(state.audit.pool(), &owner).await
            } else {
                idempotency::complete(state.audit.pool(), &owner, &stored).await
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "could not store an idempotent answer");
            }
            Ok(ServiceResponse::new(
                req,
                head.set_body(bytes).map_into_boxed_body(),
            ))
        }
    }
}

async fn replay_audit(
    state: &AppState,
    principal: &crate::auth::Principal,
    ctx: Option<&middleware::RequestContext>,
    key: &str,
    stored: &StoredResponse,
) {
    let audit_id = crate::audit::new_id();
    let entry = Entry {
        audit_id,
        stage: "replay".into(),
        outcome: if stored.status.is_some_and(|s| s < 400) {
            "succeeded"
        } else {
            "invalid"
        }
        .into(),
        received_at_us: ctx.map(|c| c.received_at_us).unwrap_or_else(now_us),
        completed_at_us: Some(now_us()),
        request_id: ctx.map(|c| c.request_id.clone()),
        subject: Some(principal.subject.clone()),
        issuer: Some(principal.issuer.clone()),
        groups: principal.groups.iter().cloned().collect(),
        source_ip: ctx.and_then(|c| c.source_ip.clone()),
        user_agent: ctx.and_then(|c| c.user_agent.clone()),
        http_method: ctx.map(|c| c.method.clone()),
        http_path: ctx.map(|c| c.path.clone()),
        http_status: stored.status,
        result: stored
            .audit_id
            .as_ref()
            .map(|id| serde_json::json!({"replayOf": id}).to_string()),
        replay: true,
        idempotency_key: Some(key.to_owned()),
        ..Entry::default()
    };
    match state.audit.append(vec![entry]).await {
        Ok(_) => {
            if let Some(c) = ctx {
                *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
            }
        }
        Err(e) => tracing::error!(error = %e, "could not audit a replay"),
    }
}
