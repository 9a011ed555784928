//! What can go wrong in the core, keyed by meaning: the request is invalid or not allowed, the
//! cluster or the audit log refused, or a bug. The HTTP edge maps each to problem+json with one
//! `From`; the stable kind, title and status of each meaning are here, so that the audit entry of a
//! refused or failed action records exactly what the caller was answered.

use crate::cluster::{ActionError, ClusterError};
use crate::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (400): a command line outside the grammar, an option that does
    /// not apply.
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The request is well-formed but invalid; every offending field is listed (422).
    #[error("invalid request: {}", fields(errors))]
    Validation { errors: Vec<FieldError> },
    /// The caller may not do this (403); the detail names the missing role.
    #[error("{detail}")]
    Forbidden { detail: String },
    /// No cluster of that name (404); `known` are those the caller may see.
    #[error("{}", unknown_cluster(name, known))]
    UnknownCluster { name: String, known: Vec<String> },
    /// Something the request names does not exist (404).
    #[error("{detail}")]
    NotFound { detail: String },
    /// The cluster's current state forbids the request (409).
    #[error("{detail}")]
    Conflict { detail: String },
    /// A call to the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The audit log cannot be written, so nothing was done (503).
    #[error("{detail}; the request was not sent to the cluster (audit is write-ahead)")]
    AuditUnavailable { detail: String },
    /// The command of an exec could not start in the container (no such program, say) (422).
    #[error("{detail}")]
    ExecFailed { detail: String },
    /// A bug or an unexpected condition (500); the cause is logged, never shown.
    #[error("an internal error occurred; the request id identifies it in kubegate's logs")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// One invalid field (422).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// The stable kind (last part of the problem `type`), the title, and the HTTP status.
    pub fn kind(&self) -> (&'static str, &'static str, u16) {
        use ClusterError as C;
        match self {
            Self::BadRequest { .. } => ("bad-request", "Bad request", 400),
            Self::Validation { .. } => ("validation-failed", "Invalid request", 422),
            Self::ExecFailed { .. } => ("exec-failed", "The command could not run", 422),
            Self::Forbidden { .. } => ("forbidden", "Forbidden", 403),
            Self::UnknownCluster { .. } => ("cluster-not-found", "Cluster not found", 404),
            Self::NotFound { .. } => ("not-found", "Not found", 404),
            Self::Conflict { .. } => ("conflict", "Conflict", 409),
            Self::AuditUnavailable { .. } => (
                "audit-unavailable",
                "Audit log unavailable: nothing was done",
                503,
            ),
            Self::Internal(_) => ("internal", "Internal server error", 500),
            Self::Cluster(e) => match e {
                C::NotFound { .. } => ("not-found", "Not found", 404),
                C::AlreadyExists { .. } => ("already-exists", "Already exists", 409),
                C::Conflict { .. } => ("conflict", "Conflict", 409),
                C::Invalid { .. } => ("invalid", "Rejected by the cluster", 422),
                C::BadRequest { .. } => ("cluster-bad-request", "Rejected by the cluster", 400),
                C::CredentialsRejected { .. } => (
                    "cluster-credentials-rejected",
                    "kubegate's cluster credentials lack permission",
                    502,
                ),
                C::Throttled { .. } => {
                    ("cluster-throttled", "Cluster API server is throttling", 503)
                }
                C::Unavailable { .. } => ("cluster-unavailable", "Cluster unavailable", 503),
                C::Timeout(_) => ("cluster-timeout", "Cluster did not answer in time", 504),
                C::NotUsable { .. } => ("cluster-not-usable", "Cluster not usable", 503),
                C::Upstream { .. } => ("cluster-error", "Unexpected answer from the cluster", 502),
            },
        }
    }

    /// The HTTP status the caller is answered with.
    pub fn status(&self) -> u16 {
        self.kind().2
    }

    /// Field-level errors: the request's, or the cluster's causes of a rejection.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::BadRequest { errors, .. } | Self::Validation { errors } => errors.clone(),
            Self::Cluster(ClusterError::Invalid { causes, .. }) => causes
                .iter()
                .map(|(field, message)| FieldError {
                    field: field.clone(),
                    message: message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl From<ActionError> for Error {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Cluster(c) => Self::Cluster(c),
            ActionError::Unprocessable { field, message } => Self::invalid(field, message),
            ActionError::Conflict(detail) => Self::Conflict { detail },
            ActionError::NotFound(detail) => Self::NotFound { detail },
        }
    }
}

impl From<crate::auth::Denied> for Error {
    fn from(d: crate::auth::Denied) -> Self {
        Self::Forbidden { detail: d.0 }
    }
}

impl From<crate::validate::Errors> for Error {
    fn from(e: crate::validate::Errors) -> Self {
        Self::Validation { errors: e.0 }
    }
}

fn fields(errors: &[FieldError]) -> String {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.join(", ")
}

fn unknown_cluster(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("no cluster named {name:?}; kubegate has no clusters configured")
    } else {
        format!(
            "no cluster named {name:?}; known clusters: {}",
            known.join(", ")
        )
    }
}

/// `urn:kubegate:problem:<kind>`: stable, and not pretending to be a web page.
pub fn problem_type(kind: &str) -> String {
    format!("urn:kubegate:problem:{kind}")
}
