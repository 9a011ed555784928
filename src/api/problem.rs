//! RFC 9457 problem details: the one error type at the HTTP boundary. Every failure kubegate answers,
//! including malformed JSON, bad path or query parameters, unknown routes and wrong methods, is an
//! `application/problem+json` body with a stable `type` that clients and SDKs can switch on.
//!
//! Policy: a 5xx body never carries internals (the log does, tied by `requestId`); a 4xx body says
//! exactly what to fix.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error};
use serde::Serialize;
use utoipa::ToSchema;

use super::middleware::current_request_id;
use crate::cluster::ClusterError;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "urn:kubegate:problem:cluster-not-found",
    "title": "Cluster not found",
    "status": 404,
    "detail": "no cluster named \"prod\"; known clusters: dev, staging",
    "requestId": "6f1c1d7e-3c1e-4a47-9a55-0c7c0e3b8a51",
    "knownClusters": ["dev", "staging"]
}))]
pub struct Problem {
    /// Stable identifier of the kind of problem (`urn:kubegate:problem:<kind>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a human.
    pub detail: String,
    /// The request id (also in the `X-Request-Id` header) that ties this answer to kubegate's logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field-level errors of an invalid request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For an unknown cluster: the names kubegate knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_clusters: Option<Vec<String>>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"field": "containers[0].image", "message": "\"NGINX\" is not a valid image reference: repository path components are lower case letters, digits and separators"}))]
pub struct FieldError {
    /// The field, as a JSON path or parameter name (e.g. `spec.replicas`, `cluster`).
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

/// Every error a handler can answer with, keyed by meaning.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or invalid (400).
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No such route (404).
    RouteNotFound { path: String },
    /// The route exists, the method does not (405).
    MethodNotAllowed { allow: &'static str },
    /// No cluster of that name (404).
    UnknownCluster { name: String, known: Vec<String> },
    /// Body larger than allowed (413).
    PayloadTooLarge { limit: usize },
    /// Body of the wrong media type (415).
    UnsupportedMediaType { detail: String },
    /// No usable bearer token (401 with `WWW-Authenticate`).
    Unauthenticated { error: crate::auth::AuthError },
    /// The caller may not do this (403); the detail names the missing role.
    Forbidden { detail: String },
    /// The request is well-formed but invalid; every offending field is listed (422).
    Validation { errors: Vec<FieldError> },
    /// Something the request names does not exist (404).
    NotFound { detail: String },
    /// The cluster's current state forbids the request (409).
    Conflict { detail: String },
    /// A call to the cluster failed.
    Cluster(ClusterError),
    /// The audit log cannot be written, so nothing was done (503).
    AuditUnavailable { detail: String },
    /// The caller's request budget is spent (429 with Retry-After).
    RateLimited { retry_after: Duration },
    /// The Idempotency-Key was used for a different request (422).
    IdempotencyKeyReused,
    /// The first request with this Idempotency-Key is still running (409).
    IdempotencyKeyInFlight,
    /// PostgreSQL is unreachable (503).
    DatabaseUnavailable { detail: String },
    /// A bug or an unexpected condition (500); the cause is logged, never shown.
    Internal(anyhow::Error),
    /// An error response produced outside kubegate's handlers, rewritten as a problem.
    Status { status: StatusCode, detail: String },
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        Self::Cluster(e)
    }
}

impl From<crate::cluster::ActionError> for ApiError {
    fn from(e: crate::cluster::ActionError) -> Self {
        use crate::cluster::ActionError as A;
        match e {
            A::Cluster(c) => Self::Cluster(c),
            A::Unprocessable { field, message } => Self::Validation {
                errors: vec![FieldError { field, message }],
            },
            A::Conflict(detail) => Self::Conflict { detail },
            A::NotFound(detail) => Self::NotFound { detail },
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// The stable kind (last part of `type`), the title, and the status code.
    fn kind(&self) -> (&'static str, &'static str, StatusCode) {
        use ClusterError as C;
        match self {
            Self::BadRequest { .. } => ("bad-request", "Bad request", StatusCode::BAD_REQUEST),
            Self::RouteNotFound { .. } => ("not-found", "Not found", StatusCode::NOT_FOUND),
            Self::Unauthenticated { .. } => (
                "unauthenticated",
                "Unauthenticated",
                StatusCode::UNAUTHORIZED,
            ),
            Self::Forbidden { .. } => ("forbidden", "Forbidden", StatusCode::FORBIDDEN),
            Self::RateLimited { .. } => (
                "rate-limited",
                "Too many requests",
                StatusCode::TOO_MANY_REQUESTS,
            ),
            Self::IdempotencyKeyReused => (
                "idempotency-key-reused",
                "Idempotency-Key used for another request",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Self::IdempotencyKeyInFlight => (
                "idempotency-key-in-flight",
                "A request with this Idempotency-Key is still running",
                StatusCode::CONFLICT,
            ),
            Self::AuditUnavailable { .. } => (
                "audit-unavailable",
                "Audit log unavailable: nothing was done",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            Self::Validation { .. } => (
                "validation-failed",
                "Invalid request",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Self::NotFound { .. } => ("not-found", "Not found", StatusCode::NOT_FOUND),
            Self::Conflict { .. } => ("conflict", "Conflict", StatusCode::CONFLICT),
            Self::MethodNotAllowed { .. } => (
                "method-not-allowed",
                "Method not allowed",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            Self::UnknownCluster { .. } => (
                "cluster-not-found",
                "Cluster not found",
                StatusCode::NOT_FOUND,
            ),
            Self::PayloadTooLarge { .. } => (
                "payload-too-large",
                "Payload too large",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            Self::UnsupportedMediaType { .. } => (
                "unsupported-media-type",
                "Unsupported media type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            Self::Cluster(e) => match e {
                C::NotFound { .. } => ("not-found", "Not found", StatusCode::NOT_FOUND),
                C::AlreadyExists { .. } => {
                    ("already-exists", "Already exists", StatusCode::CONFLICT)
                }
                C::Conflict { .. } => ("conflict", "Conflict", StatusCode::CONFLICT),
                C::Invalid { .. } => (
                    "invalid",
                    "Rejected by the cluster",
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
                C::BadRequest { .. } => (
                    "cluster-bad-request",
                    "Rejected by the cluster",
                    StatusCode::BAD_REQUEST,
                ),
                C::CredentialsRejected { .. } => (
                    "cluster-credentials-rejected",
                    "kubegate's cluster credentials lack permission",
                    StatusCode::BAD_GATEWAY,
                ),
                C::Throttled { .. } => (
                    "cluster-throttled",
                    "Cluster API server is throttling",
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                C::Unavailable { .. } => (
                    "cluster-unavailable",
                    "Cluster unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                C::Timeout(_) => (
                    "cluster-timeout",
                    "Cluster did not answer in time",
                    StatusCode::GATEWAY_TIMEOUT,
                ),
                C::NotUsable { .. } => (
                    "cluster-not-usable",
                    "Cluster not usable",
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                C::Upstream { .. } => (
                    "cluster-error",
                    "Unexpected answer from the cluster",
                    StatusCode::BAD_GATEWAY,
                ),
            },
            Self::DatabaseUnavailable { .. } => (
                "database-unavailable",
                "Database unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            Self::Internal(_) => (
                "internal",
                "Internal server error",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            Self::Status { status, .. } => status_kind(*status),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } => detail.clone(),
            Self::RouteNotFound { path } => format!("no route matches {path}; see /openapi.json"),
            Self::Validation { errors } => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid request: {}", fields.join(", "))
            }
            Self::NotFound { detail } | Self::Conflict { detail } | Self::Forbidden { detail } => {
                detail.clone()
            }
            Self::Unauthenticated { error } => error.to_string(),
            Self::RateLimited { retry_after } => format!(
                "too many requests from this caller; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::IdempotencyKeyReused => "this Idempotency-Key was used for a different request (method, path, query or body differ); use a new key".into(),
            Self::IdempotencyKeyInFlight => "the first request with this Idempotency-Key is still running; retry shortly".into(),
            Self::AuditUnavailable { detail } => {
                format!("{detail}; the request was not sent to the cluster (audit is write-ahead)")
            }
            Self::MethodNotAllowed { allow } => {
                format!("this route accepts {allow}")
            }
            Self::UnknownCluster { name, known } => {
                if known.is_empty() {
                    format!("no cluster named {name:?}; kubegate has no clusters configured")
                } else {
                    format!(
                        "no cluster named {name:?}; known clusters: {}",
                        known.join(", ")
                    )
                }
            }
            Self::PayloadTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            Self::UnsupportedMediaType { detail } => detail.clone(),
            Self::Cluster(e) => e.to_string(),
            Self::DatabaseUnavailable { detail } => detail.clone(),
            Self::Internal(_) => {
                "an internal error occurred; the request id identifies it in kubegate's logs".into()
            }
            Self::Status { detail, .. } => detail.clone(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Cluster(ClusterError::Throttled { retry_after, .. }) => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            Self::IdempotencyKeyInFlight => Some(Duration::from_secs(1)),
            Self::RateLimited { retry_after } => Some(*retry_after + Duration::from_millis(999)),
            _ => None,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let (kind, title, status) = self.kind();
        let mut errors = Vec::new();
        let mut known_clusters = None;
        match self {
            Self::BadRequest { errors: e, .. } | Self::Validation { errors: e } => {
                errors.clone_from(e)
            }
            Self::UnknownCluster { known, .. } => known_clusters = Some(known.clone()),
            Self::Cluster(ClusterError::Invalid { causes, .. }) => {
                errors = causes
                    .iter()
                    .map(|(field, message)| FieldError {
                        field: field.clone(),
                        message: message.clone(),
                    })
                    .collect();
            }
            _ => {}
        }
        Problem {
            problem_type: problem_type(kind),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            request_id: current_request_id(),
            errors,
            known_clusters,
        }
    }
}

/// `urn:kubegate:problem:<kind>`: stable, and not pretending to be a web page.
pub fn problem_type(kind: &str) -> String {
    format!("urn:kubegate:problem:{kind}")
}

/// Kind and title for a bare status code (responses not produced by kubegate's handlers).
fn status_kind(status: StatusCode) -> (&'static str, &'static str, StatusCode) {
    let (kind, title) = match status.as_u16() {
        400 => ("bad-request", "Bad request"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        406 => ("not-acceptable", "Not acceptable"),
        408 => ("request-timeout", "Request timeout"),
        413 => ("payload-too-large", "Payload too large"),
        414 => ("uri-too-long", "URI too long"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        431 => ("headers-too-large", "Request header fields too large"),
        s if s >= 500 => ("internal", "Internal server error"),
        _ => ("bad-request", "Bad request"),
    };
    (kind, title, status)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Cluster(e) => Some(e),
            Self::Internal(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().2
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Self::MethodNotAllowed { allow } = self {
            res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if let Self::Unauthenticated { error } = self {
            let value = match error {
                crate::auth::AuthError::Missing => "Bearer realm=\"kubegate\"".to_owned(),
                crate::auth::AuthError::Invalid(why) => format!(
                    "Bearer realm=\"kubegate\", error=\"invalid_token\", error_description=\"{}\"",
                    why.replace(['"', '\\'], "'")
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.insert_header((header::WWW_AUTHENTICATE, v));
            }
        }
        if let Some(after) = self.retry_after() {
            res.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
        }
        res.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

/// Malformed or oversized JSON bodies.
pub fn json_error(err: error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ApiError::PayloadTooLarge { limit: *limit }
        }
        J::ContentType => ApiError::UnsupportedMediaType {
            detail: "the request body must be JSON (Content-Type: application/json)".into(),
        },
        J::Deserialize(e) => ApiError::bad_request(format!("invalid JSON body: {e}")),
        other => ApiError::bad_request(format!("unreadable request body: {other}")),
    };
    api.into()
}

/// Path parameters that do not parse.
pub fn path_error(err: error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid path parameter: {err}")).into()
}

/// Query parameters that do not parse.
pub fn query_error(err: error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query parameter: {err}")).into()
}
