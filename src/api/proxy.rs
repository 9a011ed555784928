//! `.../pods/{name}/proxy/{path}` and `.../services/{name}/proxy/{path}`: any method, headers
//! (minus kubegate's `Authorization` and one-hop headers) and body forwarded through the API
//! server's proxy subresource; the answer streamed back. Admin only (`proxy`); each request
//! audited.

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use http_body_util::BodyExt;

use super::common::ObjectPath;
use super::problem::{ApiError, Problem};
use crate::auth::Principal;
use crate::gateway::proxy::{self, HOP_BY_HOP, ProxyKind, ProxyRequest};
use crate::gateway::{AppState, Error};

pub async fn to_pod(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    forward(state, principal, req, body, ProxyKind::Pod).await
}

pub async fn to_service(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    forward(state, principal, req, body, ProxyKind::Service).await
}

async fn forward(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    mut payload: web::Payload,
    kind: ProxyKind,
) -> Result<HttpResponse, ApiError> {
    let info = req.match_info();
    let (Some(cluster), Some(namespace), Some(name)) =
        (info.get("cluster"), info.get("namespace"), info.get("name"))
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "proxy route without its names"
        )));
    };
    let target = ObjectPath {
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    // The path after `/proxy`, as the client encoded it: what follows the eighth segment of
    // `/v1/clusters/C/namespaces/NS/KIND/NAME/proxy` (a name may contain "proxy" too).
    let raw = req.uri().path();
    let path = raw
        .match_indices('/')
        .nth(8)
        .map(|(i, _)| raw[i..].to_owned())
        .unwrap_or_default();
    // The body, up to the request size limit (kube's client takes a whole body).
    let body = read_body(&mut payload, state.max_body_bytes).await?;
    let (method, headers) = method_and_headers(&req)?;
    let answer = proxy::proxy(
        &state,
        &principal,
        ProxyRequest {
            target: target.target(),
            kind,
            name: target.name.clone(),
            method,
            path,
            query: Some(req.query_string().to_owned()).filter(|q| !q.is_empty()),
            headers,
            body,
        },
    )
    .await?;
    Ok(streamed(answer))
}

/// A request body, whole, up to `limit` bytes (then 413).
pub(super) async fn read_body(
    payload: &mut web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Error::bad_request(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request's method and headers in the `http` crate's types, for a request made upstream.
pub(super) fn method_and_headers(
    req: &HttpRequest,
) -> Result<(http::Method, http::HeaderMap), ApiError> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let method = http::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| Error::bad_request("unknown method"))?;
    Ok((method, headers))
}

/// An upstream answer streamed back as it comes: its status and headers (not those of one
/// hop), then its body.
pub(super) fn streamed(answer: http::Response<kube::client::Body>) -> HttpResponse {
    let (head, body) = answer.into_parts();
    let mut out = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(head.status.as_u16())
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    for (name, value) in &head.headers {
        if HOP_BY_HOP.contains(&name.as_str()) || name == http::header::CONTENT_LENGTH {
            continue;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    let stream = futures::stream::unfold(body, |mut body| async move {
        loop {
            match body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some((Ok::<_, actix_web::Error>(data), body)),
                    Err(_) => continue,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "proxied answer broke off");
                    return None;
                }
            }
        }
    });
    out.streaming(stream)
}

/// Documentation of the proxy routes: one operation per method and kind (the route takes any).
macro_rules! proxy_docs {
    ($($fn_name:ident, $method:ident, $path:literal, $id:literal, $summary:literal;)*) => {$(
        #[utoipa::path(
            $method, path = $path, tag = "pods", operation_id = $id,
            summary = $summary,
            description = "Headers and body pass through (not kubegate's `Authorization`, nor one-hop headers); the answer, whatever its status, is the target's, streamed. The path may name a port: `NAME:PORT` or `https:NAME:PORT`. Needs the `proxy` permission (admin); each request is audited.",
            params(
                ObjectPath,
                ("path" = String, Path, description = "The path at the target (after `/proxy/`)"),
            ),
            request_body(content = String, content_type = "*/*", description = "Passed on as is (at most KUBEGATE_MAX_BODY_BYTES)"),
            responses(
                (status = "default", description = "The target's answer as it gave it (the API server's own Status when it cannot reach it)", body = String, content_type = "*/*"),
                (status = 403, description = "No `proxy` permission here", body = Problem, content_type = "application/problem+json"),
                (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid name (`NAME`, `NAME:PORT`, `http(s):NAME:PORT`)", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "The audit log cannot be written: nothing was sent", body = Problem, content_type = "application/problem+json"),
            )
        )]
        #[allow(dead_code)]
        pub async fn $fn_name() {}
    )*};
}

proxy_docs! {
    proxy_get_pod, get, "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/proxy/{path}", "proxy_get_pod", "GET a path of a pod through the API server's proxy.";
    proxy_post_pod, post, "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/proxy/{path}", "proxy_post_pod", "POST to a path of a pod through the API server's proxy.";
    proxy_put_pod, put, "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/proxy/{path}", "proxy_put_pod", "PUT to a path of a pod through the API server's proxy.";
    proxy_patch_pod, patch, "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/proxy/{path}", "proxy_patch_pod", "PATCH a path of a pod through the API server's proxy.";
    proxy_delete_pod, delete, "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/proxy/{path}", "proxy_delete_pod", "DELETE a path of a pod through the API server's proxy.";
    proxy_get_service, get, "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/proxy/{path}", "proxy_get_service", "GET a path of a service through the API server's proxy.";
    proxy_post_service, post, "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/proxy/{path}", "proxy_post_service", "POST to a path of a service through the API server's proxy.";
    proxy_put_service, put, "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/proxy/{path}", "proxy_put_service", "PUT to a path of a service through the API server's proxy.";
    proxy_patch_service, patch, "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/proxy/{path}", "proxy_patch_service", "PATCH a path of a service through the API server's proxy.";
    proxy_delete_service, delete, "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/proxy/{path}", "proxy_delete_service", "DELETE a path of a service through the API server's proxy.";
}
