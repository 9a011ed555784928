//! gzip where it pays: JSON answers of at least `LARGE` bytes (lists), for clients that accept
//! it, and the console's files (compressed once at start). Small answers, streams (watches,
//! logs, events) and the Kubernetes API's answers (`/k8s`, passed through as the API server
//! sent them) go as they are.

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use std::io::Write as _;

/// Smallest JSON answer worth compressing (below it the header and CPU outweigh the saving).
const LARGE: usize = 8 * 1024;

/// Whether the request's `Accept-Encoding` takes gzip (not refused with `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// `body` gzipped, when that makes it smaller.
pub fn gzip(body: &[u8], level: flate2::Compression) -> Option<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), level);
    gz.write_all(body)
        .and_then(|()| gz.finish())
        .ok()
        .filter(|z| z.len() < body.len())
}

/// Middleware: gzip a large JSON answer (whole in memory already) for a client that takes it.
pub async fn large_json(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let wanted = accepts_gzip(req.headers()) && !req.path().starts_with("/k8s/");
    let res = next.call(req).await?;
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/problem+json")
        });
    let large = matches!(res.response().body().size(), BodySize::Sized(n) if n >= LARGE as u64);
    if !wanted || !json || !large || res.headers().contains_key(header::CONTENT_ENCODING) {
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let (mut head, body) = res.into_parts();
    // A sized body is bytes already: this does not wait.
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return Ok(ServiceResponse::new(
            req,
            actix_web::HttpResponse::InternalServerError().finish(),
        ));
    };
    let body = match gzip(&bytes, flate2::Compression::fast()) {
        Some(z) => {
            head.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            BoxBody::new(z)
        }
        None => BoxBody::new(bytes),
    };
    head.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Ok(ServiceResponse::new(req, head.set_body(body)))
}
