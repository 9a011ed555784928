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

use crate::cluster::ClusterError;
use crate::context::current_request_id;
use crate::gateway;

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
    /// For an apply that failed part way: every object's result, the failed one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub objects: Option<Vec<super::applied::AppliedObject>>,
}

pub use crate::validate::FieldError;

/// Every error a handler can answer with, keyed by meaning: the core's (`gateway::Error`), and
/// those only the HTTP edge knows (routes, methods, media types, tokens, rate limits, idempotency).
#[derive(Debug)]
pub enum ApiError {
    /// What the core refused or failed with.
    Core(gateway::Error),
    /// No such route (404).
    RouteNotFound { path: String },
    /// The route exists, the method does not (405).
    MethodNotAllowed { allow: &'static str },
    /// Body larger than allowed (413).
    PayloadTooLarge { limit: usize },
    /// Body of the wrong media type (415).
    UnsupportedMediaType { detail: String },
    /// No usable bearer token (401 with `WWW-Authenticate`).
    Unauthenticated { error: crate::auth::AuthError },
    /// The caller's request budget is spent (429 with Retry-After).
    RateLimited { retry_after: Duration },
    /// The Idempotency-Key was used for a different request (422).
    IdempotencyKeyReused,
    /// The first request with this Idempotency-Key is still running (409).
    IdempotencyKeyInFlight,
    /// PostgreSQL is unreachable (503).
    DatabaseUnavailable { detail: String },
    /// An error response produced outside kubegate's handlers, rewritten as a problem.
    Status { status: StatusCode, detail: String },
}

/// The one place the core's errors become HTTP answers.
impl From<gateway::Error> for ApiError {
    fn from(e: gateway::Error) -> Self {
        Self::Core(e)
    }
}

/// Errors of the layers below the gateway, by way of its meanings.
macro_rules! through_the_gateway {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                Self::Core(e.into())
            }
        }
    )*};
}
through_the_gateway!(
    ClusterError,
    crate::cluster::ActionError,
    crate::auth::Denied,
    crate::validate::Errors
);

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Core(gateway::Error::Internal(e))
    }
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        gateway::Error::bad_request(detail).into()
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        gateway::Error::Forbidden {
            detail: detail.into(),
        }
        .into()
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        gateway::Error::Validation { errors }.into()
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        gateway::Error::internal(e).into()
    }

    /// The stable kind (last part of `type`), the title, and the status code.
    fn kind(&self) -> (&'static str, &'static str, StatusCode) {
        let (kind, title, status) = match self {
            Self::Core(e) => e.kind(),
            Self::RouteNotFound { .. } => ("not-found", "Not found", 404),
            Self::Unauthenticated { .. } => ("unauthenticated", "Unauthenticated", 401),
            Self::RateLimited { .. } => ("rate-limited", "Too many requests", 429),
            Self::IdempotencyKeyReused => (
                "idempotency-key-reused",
                "Idempotency-Key used for another request",
                422,
            ),
            Self::IdempotencyKeyInFlight => (
                "idempotency-key-in-flight",
                "A request with this Idempotency-Key is still running",
                409,
            ),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed", 405),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large", 413),
            Self::UnsupportedMediaType { .. } => {
                ("unsupported-media-type", "Unsupported media type", 415)
            }
            Self::DatabaseUnavailable { .. } => {
                ("database-unavailable", "Database unavailable", 503)
            }
            Self::Status { status, .. } => return status_kind(*status),
        };
        (
            kind,
            title,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
    }

    fn detail(&self) -> String {
        match self {
            Self::Core(e) => e.to_string(),
            Self::RouteNotFound { path } => format!("no route matches {path}; see /openapi.json"),
            Self::Unauthenticated { error } => error.to_string(),
            Self::RateLimited { retry_after } => format!(
                "too many requests from this caller; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::IdempotencyKeyReused => "this Idempotency-Key was used for a different request (method, path, query or body differ); use a new key".into(),
            Self::IdempotencyKeyInFlight => "the first request with this Idempotency-Key is still running; retry shortly".into(),
            Self::MethodNotAllowed { allow } => {
                format!("this route accepts {allow}")
            }
            Self::PayloadTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            Self::UnsupportedMediaType { detail } => detail.clone(),
            Self::DatabaseUnavailable { detail } => detail.clone(),
            Self::Status { detail, .. } => detail.clone(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Core(gateway::Error::Cluster(ClusterError::Throttled {
                retry_after, ..
            })) => Some(retry_after.unwrap_or(Duration::from_secs(1))),
            Self::IdempotencyKeyInFlight => Some(Duration::from_secs(1)),
            Self::RateLimited { retry_after } => Some(*retry_after + Duration::from_millis(999)),
            _ => None,
        }
    }

    /// What a refusal that reached no action is recorded as in the audit log.
    pub fn refusal(&self) -> gateway::Refusal {
        let p = self.problem();
        gateway::Refusal {
            status: p.status,
            problem_type: p.problem_type,
            detail: p.detail,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let (kind, title, status) = self.kind();
        let (errors, known_clusters) = match self {
            Self::Core(gateway::Error::UnknownCluster { known, .. }) => {
                (Vec::new(), Some(known.clone()))
            }
            Self::Core(e) => (e.field_errors(), None),
            _ => (Vec::new(), None),
        };
        Problem {
            problem_type: problem_type(kind),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            request_id: current_request_id(),
            errors,
            known_clusters,
            objects: None,
        }
    }
}

pub use gateway::problem_type;

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
            Self::Core(e) => Some(e),
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
